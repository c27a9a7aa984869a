//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go does it: a candidate takes
//! the Lease only when its holder has not renewed it for the lease duration *as observed on
//! this replica's own clock* (no trust in other clocks); the leader renews every retry period
//! and stops acting when it could not renew within the renew deadline, which is shorter than
//! the lease duration, so two replicas never act at once. A leader renews with one write of the
//! Lease it last wrote (its resourceVersion the precondition), and reads the Lease only when
//! that write conflicts.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease as LeaseObject, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, PostParams};

use crate::{Error, Result};

/// The Lease's name.
pub const NAME: &str = "aegis-operator";

/// The election's clocks.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl Timing {
    pub fn from_settings(settings: &aegis_core::settings::OperatorSettings) -> Self {
        Self {
            lease_duration: Duration::from_secs(settings.lease_duration_seconds),
            renew_deadline: Duration::from_secs(settings.renew_deadline_seconds),
            retry_period: Duration::from_secs(settings.retry_period_seconds),
        }
    }
}

/// What this replica last saw of the Lease, and when (by its own clock).
#[derive(Debug)]
struct Observed {
    resource_version: String,
    at: Instant,
}

/// One replica's side of the election.
pub struct Lease {
    api: Api<LeaseObject>,
    identity: String,
    timing: Timing,
    observed: Mutex<Option<Observed>>,
    /// The Lease as this replica last wrote it while holding it.
    held: Mutex<Option<LeaseObject>>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// Who holds the Lease now, as the API server has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub identity: String,
    pub renewed: Option<String>,
    pub transitions: i32,
}

/// The Lease's holder in `namespace`, if anyone holds it.
pub async fn holder(client: &Client, namespace: &str) -> Result<Option<Holder>> {
    let api: Api<LeaseObject> = Api::namespaced(client.clone(), namespace);
    Ok(api.get_opt(NAME).await?.and_then(|lease| {
        let spec = lease.spec?;
        let identity = spec.holder_identity.filter(|h| !h.is_empty())?;
        Some(Holder {
            identity,
            renewed: spec.renew_time.map(|t| t.0.to_string()),
            transitions: spec.lease_transitions.unwrap_or(0),
        })
    }))
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

fn seconds(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs()).unwrap_or(i32::MAX)
}

impl Lease {
    pub fn new(client: Client, namespace: &str, identity: &str, timing: Timing) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            identity: identity.to_owned(),
            timing,
            observed: Mutex::new(None),
            held: Mutex::new(None),
        }
    }

    /// Waits until this replica holds the Lease.
    pub async fn acquire(&self) -> Result<()> {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    tracing::info!(identity = %self.identity, "leader lease acquired");
                    return Ok(());
                }
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(%error, "leader election: the Lease could not be read or written");
                }
            }
            tokio::time::sleep(self.timing.retry_period).await;
        }
    }

    /// Renews the Lease every retry period; returns (with an error) when it was lost: taken by
    /// another replica, or not renewed within the renew deadline.
    pub async fn hold(&self) -> Result<()> {
        let mut renewed = Instant::now();
        loop {
            tokio::time::sleep(self.timing.retry_period).await;
            // A renewal that does not answer (a partition drops packets, nothing resets the
            // connection) must not keep this replica acting past the renew deadline.
            let left = self.timing.renew_deadline.saturating_sub(renewed.elapsed());
            let Ok(outcome) = tokio::time::timeout(left, self.renew()).await else {
                return Err(Error::LeaseLost(format!(
                    "not renewed within {}s: the API server did not answer",
                    self.timing.renew_deadline.as_secs()
                )));
            };
            match outcome {
                Ok(true) => renewed = Instant::now(),
                Ok(false) => {
                    return Err(Error::LeaseLost(
                        "another replica holds the Lease".to_owned(),
                    ));
                }
                Err(error) => {
                    tracing::warn!(%error, "the Lease could not be renewed");
                    if renewed.elapsed() >= self.timing.renew_deadline {
                        return Err(Error::LeaseLost(format!(
                            "not renewed within {}s: {error}",
                            self.timing.renew_deadline.as_secs()
                        )));
                    }
                }
            }
        }
    }

    /// Gives the Lease up (on shutdown), so a standby takes over without waiting for it to
    /// expire.
    pub async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(NAME).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now());
        match self.api.replace(NAME, &PostParams::default(), &lease).await {
            Ok(_) => tracing::info!("leader lease released"),
            Err(error) => {
                tracing::warn!(%error, "the Lease could not be released; it expires by itself");
            }
        }
    }

    /// Renews the Lease this replica holds with one write; a conflict (someone else wrote it)
    /// reads it again and goes by what it says.
    async fn renew(&self) -> Result<bool> {
        let held = self.held.lock().ok().and_then(|held| held.clone());
        let Some(mut lease) = held else {
            return self.try_acquire_or_renew().await;
        };
        if let Some(spec) = lease.spec.as_mut() {
            spec.renew_time = Some(now());
        }
        match self.api.replace(NAME, &PostParams::default(), &lease).await {
            Ok(written) => {
                self.keep(Some(&written));
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {
                self.keep(None);
                self.try_acquire_or_renew().await
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Keeps the Lease as written by this replica (or forgets it).
    fn keep(&self, written: Option<&LeaseObject>) {
        if let Ok(mut held) = self.held.lock() {
            *held = written.cloned();
        }
        if let Some(written) = written {
            self.observe(written);
        }
    }

    /// One round: take or renew the Lease when this replica may; `Ok(false)` when another
    /// holds it (or won a race for it).
    async fn try_acquire_or_renew(&self) -> Result<bool> {
        let Some(mut lease) = self.api.get_opt(NAME).await? else {
            let lease = LeaseObject {
                metadata: ObjectMeta {
                    name: Some(NAME.to_owned()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(seconds(self.timing.lease_duration)),
                    acquire_time: Some(now()),
                    renew_time: Some(now()),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.keep(Some(&created));
                    Ok(true)
                }
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                Err(error) => Err(error.into()),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let mine = holder.as_deref() == Some(self.identity.as_str());
        if !mine {
            self.keep(None);
            let changed = self.observe(&lease);
            let duration = spec
                .lease_duration_seconds
                .map_or(self.timing.lease_duration, |s| {
                    Duration::from_secs(u64::try_from(s).unwrap_or(0))
                });
            let unchanged_for = self
                .observed
                .lock()
                .map(|o| o.as_ref().map(|o| o.at.elapsed()))
                .unwrap_or_default()
                .unwrap_or_default();
            if holder.is_some() && (changed || unchanged_for < duration) {
                return Ok(false);
            }
        }
        let next = lease.spec.get_or_insert_with(LeaseSpec::default);
        if !mine {
            next.acquire_time = Some(now());
            next.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            tracing::info!(previous = ?holder, "taking over the leader lease");
        }
        next.holder_identity = Some(self.identity.clone());
        next.lease_duration_seconds = Some(seconds(self.timing.lease_duration));
        next.renew_time = Some(now());
        // The resourceVersion read above is a precondition: a replica that raced us wins.
        match self.api.replace(NAME, &PostParams::default(), &lease).await {
            Ok(written) => {
                self.keep(Some(&written));
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// Records the Lease as seen now when its record changed; says whether it did.
    fn observe(&self, lease: &LeaseObject) -> bool {
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        let Ok(mut observed) = self.observed.lock() else {
            return true;
        };
        let changed = observed
            .as_ref()
            .is_none_or(|o| o.resource_version != version);
        if changed {
            *observed = Some(Observed {
                resource_version: version,
                at: Instant::now(),
            });
        }
        changed
    }
}
