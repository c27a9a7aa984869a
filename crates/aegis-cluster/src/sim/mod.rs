//! The simulated source behind `--mock`: the built-in demo world (SPEC §7).
//!
//! Manifests are applied in order, like `kubectl apply`; a second version of a Deployment is a
//! rollout with a new revision. Every applied object remembers when it was applied, on a clock that
//! starts at the world's `clock` and moves only when a writer waits
//! ([`crate::ClusterWrite::wait`]), so a fresh clone is seconds old while the demo workloads are 45
//! minutes old. Observing runs the controllers (Deployment → ReplicaSet → Pod, StatefulSet,
//! DaemonSet, Job, Service → EndpointSlice) at the clock's time, and every pod is simulated by
//! [`pod::simulate`] against the [`world::World`] model, after the namespace's LimitRange defaults
//! and ResourceQuota pod count admit it. NetworkPolicies are kept but change nothing: the model has
//! no traffic between pods. The result is a [`ClusterState`] like any other source's.

pub mod pod;
pub mod world;

mod write;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use aegis_core::state::LogKey;
use aegis_core::{ClusterState, SourceKind};
use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{
    ConfigMap, LimitRange, PersistentVolumeClaim, Pod, ResourceQuota, Secret,
};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use self::pod::{Namespace, PodOutcome, Scheduler, SimEvent, stable_hash};
use self::world::World;
use crate::{ClusterRead, Error, Loaded, ObjectSink, Result, Scope};

/// The demo world's model.
pub const DEMO_WORLD: &str = include_str!("../../../../examples/mock-world.yaml");

/// The demo incidents, applied in this order.
pub const DEMO_MANIFESTS: [(&str, &str); 10] = [
    (
        "01-namespaces.yaml",
        include_str!("../../../../examples/incidents/01-namespaces.yaml"),
    ),
    (
        "api-gateway.yaml",
        include_str!("../../../../examples/incidents/api-gateway.yaml"),
    ),
    (
        "crashloop-missing-env.yaml",
        include_str!("../../../../examples/incidents/crashloop-missing-env.yaml"),
    ),
    (
        "demo-nginx.yaml",
        include_str!("../../../../examples/incidents/demo-nginx.yaml"),
    ),
    (
        "imagepull-bad-tag.yaml",
        include_str!("../../../../examples/incidents/imagepull-bad-tag.yaml"),
    ),
    (
        "liveness-failure.yaml",
        include_str!("../../../../examples/incidents/liveness-failure.yaml"),
    ),
    (
        "oomkill-memory-leak.yaml",
        include_str!("../../../../examples/incidents/oomkill-memory-leak.yaml"),
    ),
    (
        "pending-no-resources.yaml",
        include_str!("../../../../examples/incidents/pending-no-resources.yaml"),
    ),
    (
        "readiness-failure.yaml",
        include_str!("../../../../examples/incidents/readiness-failure.yaml"),
    ),
    (
        "service-wrong-selector.yaml",
        include_str!("../../../../examples/incidents/service-wrong-selector.yaml"),
    ),
];

/// A simulated cluster: a world model, the manifests applied to it and its clock.
#[derive(Debug)]
pub struct MockSource {
    world: World,
    /// When the demo workloads were created: the world's clock less their age.
    created: Timestamp,
    inner: Mutex<SimState>,
    /// Where every write is journaled, when the world persists between processes.
    journal: Option<PathBuf>,
}

/// What writes change: the applied objects and the clock.
#[derive(Debug, Clone)]
struct SimState {
    /// Applied objects in order; later versions of the same object follow earlier ones.
    manifests: Vec<Applied>,
    clock: Timestamp,
    /// The last resource version handed out.
    version: u64,
}

/// One applied version of an object, and when it was applied.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Applied {
    object: Value,
    at: Timestamp,
    /// Written after the world was built (by a client), not part of its starting state.
    #[serde(default)]
    written: bool,
}

/// What a persistent world keeps between processes: the writes made to it and its clock.
#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    clock: Timestamp,
    version: u64,
    writes: Vec<Applied>,
}

impl Clone for MockSource {
    fn clone(&self) -> Self {
        Self {
            world: self.world.clone(),
            created: self.created,
            inner: Mutex::new(self.state().clone()),
            journal: None,
        }
    }
}

impl MockSource {
    /// The built-in demo world.
    pub fn demo() -> Result<Self> {
        Self::new(DEMO_WORLD, &DEMO_MANIFESTS)
    }

    /// What the built-in demo world holds, in every namespace.
    pub fn demo_state() -> Result<ClusterState> {
        Ok(Self::demo()?.observe(&Scope::all())?.state)
    }

    /// A world from its model and named manifest files.
    pub fn new(world: &str, manifests: &[(&str, &str)]) -> Result<Self> {
        let world = World::parse(world).map_err(Error::World)?;
        let clock: Timestamp = world
            .clock
            .parse()
            .map_err(|e| Error::World(format!("clock: {e}")))?;
        let created = clock
            .checked_sub(SignedDuration::from_secs(world.workload_age_seconds as i64))
            .map_err(|e| Error::World(format!("workloadAgeSeconds: {e}")))?;
        let mut objects = Vec::new();
        for (name, text) in manifests {
            for document in serde_yaml::Deserializer::from_str(text) {
                let mut value = Value::deserialize(document)
                    .map_err(|e| Error::World(format!("{name}: {e}")))?;
                if value.is_object() {
                    value["metadata"]["resourceVersion"] = json!((objects.len() + 1).to_string());
                    objects.push(Applied {
                        object: value,
                        at: created,
                        written: false,
                    });
                }
            }
        }
        Ok(Self {
            world,
            created,
            inner: Mutex::new(SimState {
                version: objects.len() as u64,
                manifests: objects,
                clock,
            }),
            journal: None,
        })
    }

    /// The demo world as earlier processes left it: the writes journaled at `path` are replayed
    /// (when the file exists). With `journal_writes`, every write from now on is journaled
    /// there too, so the world persists between commands; without, this process's writes (a
    /// shadow, the clock moving while it is watched) are its own.
    pub fn demo_journaled(path: &Path, journal_writes: bool) -> Result<Self> {
        let mut source = Self::demo()?;
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let journal: Journal = serde_json::from_str(&text).map_err(|e| {
                    Error::World(format!(
                        "{} is not a journal of the mock world ({e}); delete it to start the demo world afresh",
                        path.display()
                    ))
                })?;
                let mut state = source.state();
                state.clock = state.clock.max(journal.clock);
                state.version = state.version.max(journal.version);
                state.manifests.extend(journal.writes);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::World(format!("cannot read {}: {e}", path.display())));
            }
        }
        if journal_writes {
            source.journal = Some(path.to_owned());
        }
        Ok(source)
    }

    /// Writes the journal, when the world persists: every object written since it was built,
    /// and the clock. Written to a temporary file and renamed, so a crash leaves the last one.
    fn save_journal(&self) -> std::result::Result<(), String> {
        let Some(path) = &self.journal else {
            return Ok(());
        };
        let journal = {
            let state = self.state();
            Journal {
                clock: state.clock,
                version: state.version,
                writes: state
                    .manifests
                    .iter()
                    .filter(|a| a.written)
                    .cloned()
                    .collect(),
            }
        };
        let text = serde_json::to_string(&journal).map_err(|e| e.to_string())?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let temporary = path.with_extension(format!("{}.tmp", std::process::id()));
        std::fs::write(&temporary, text).map_err(|e| format!("{}: {e}", temporary.display()))?;
        std::fs::rename(&temporary, path).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Adds (or updates, as a rollout) one object as part of the world's starting state: it is
    /// as old as the demo workloads.
    pub fn apply(&mut self, mut object: Value) {
        let at = self.created;
        let mut state = self.state();
        state.version += 1;
        object["metadata"]["resourceVersion"] = json!(state.version.to_string());
        state.manifests.push(Applied {
            object,
            at,
            written: false,
        });
    }

    /// The simulated clock.
    pub fn clock(&self) -> Timestamp {
        self.state().clock
    }

    /// Moves the simulated clock forward.
    pub fn advance(&self, by: Duration) {
        let mut state = self.state();
        state.clock = state
            .clock
            .checked_add(SignedDuration::try_from(by).unwrap_or(SignedDuration::ZERO))
            .unwrap_or(state.clock);
    }

    /// Moves the clock forward, and journals it when the world persists.
    fn advance_and_save(&self, by: Duration) -> std::result::Result<(), String> {
        self.advance(by);
        self.save_journal()
    }

    /// The writable state. A poisoned lock only means another thread panicked while holding
    /// it; the state itself is a list of applied objects that no panic leaves half-written.
    fn state(&self) -> std::sync::MutexGuard<'_, SimState> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs the controllers and the pod simulation at the clock's time, and returns what a
    /// client would read.
    pub fn observe(&self, scope: &Scope) -> Result<Loaded> {
        let SimState {
            manifests, clock, ..
        } = self.state().clone();
        let mut simulation = Simulation::new(&self.world, self.created, clock);
        simulation.run(&manifests)?;
        let mut sink = ObjectSink::new(scope.clone());
        for object in simulation.objects {
            sink.add(object).map_err(Error::World)?;
        }
        let mut state: ClusterState = sink.state;
        for (key, text) in simulation.logs {
            if scope.includes(Some(&key.namespace)) {
                state.logs.insert(key, text);
            }
        }
        state.now = Some(simulation.now);
        Ok(Loaded {
            state,
            warnings: Vec::new(),
        })
    }
}

impl ClusterRead for MockSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Mock
    }

    fn load<'a>(&'a self, scope: &'a Scope) -> BoxFuture<'a, Result<Loaded>> {
        async move { self.observe(scope) }.boxed()
    }
}

/// One run of the simulated controllers.
struct Simulation<'w> {
    world: &'w World,
    now: Timestamp,
    created: Timestamp,
    scheduler: Scheduler,
    objects: Vec<Value>,
    logs: Vec<(LogKey, String)>,
    config_maps: Vec<ConfigMap>,
    secrets: Vec<Secret>,
    claims: Vec<PersistentVolumeClaim>,
    limit_ranges: Vec<LimitRange>,
    quotas: Vec<ResourceQuota>,
    /// Pods by namespace, for Services.
    pods: Vec<Value>,
}

/// The alphabet Kubernetes uses for generated name suffixes.
const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn suffix(seed: &str, length: usize) -> String {
    let mut hash = stable_hash(seed);
    (0..length)
        .map(|_| {
            let c = NAME_ALPHABET[(hash % NAME_ALPHABET.len() as u64) as usize] as char;
            hash /= NAME_ALPHABET.len() as u64;
            c
        })
        .collect()
}

fn uid(kind: &str, namespace: &str, name: &str) -> String {
    let a = stable_hash(&format!("{kind}/{namespace}/{name}"));
    let b = stable_hash(&format!("{name}/{namespace}/{kind}"));
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        (b >> 48) & 0xfff,
        b & 0xffff_ffff_ffff
    )
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

impl<'w> Simulation<'w> {
    fn new(world: &'w World, created: Timestamp, now: Timestamp) -> Self {
        Self {
            world,
            now,
            created,
            scheduler: Scheduler::new(world),
            objects: Vec::new(),
            logs: Vec::new(),
            config_maps: Vec::new(),
            secrets: Vec::new(),
            claims: Vec::new(),
            limit_ranges: Vec::new(),
            quotas: Vec::new(),
            pods: Vec::new(),
        }
    }

    fn run(&mut self, manifests: &[Applied]) -> Result<()> {
        // Apply: the last version of each object wins; Deployments keep their earlier templates.
        // An object is as old as its first version; a Deployment's revision as old as its template.
        let mut latest: Vec<(String, Value, Timestamp)> = Vec::new();
        let mut history: BTreeMap<String, Vec<(Value, Timestamp)>> = BTreeMap::new();
        for Applied { object, at, .. } in manifests {
            let kind = str_at(object, "/kind");
            let namespace = match str_at(object, "/metadata/namespace") {
                "" if kind != "Namespace" => "default",
                ns => ns,
            };
            let key = format!("{kind}/{namespace}/{}", str_at(object, "/metadata/name"));
            let mut object = object.clone();
            if kind != "Namespace" {
                object["metadata"]["namespace"] = json!(namespace);
            }
            if kind == "Deployment" {
                let revisions = history.entry(key.clone()).or_default();
                let template = object["spec"]["template"].clone();
                if revisions.last().is_none_or(|(last, _)| *last != template) {
                    revisions.push((template, *at));
                }
            }
            match latest.iter_mut().find(|(k, _, _)| *k == key) {
                Some((_, existing, _)) => *existing = object,
                None => latest.push((key, object, *at)),
            }
        }
        self.add_nodes();
        let mut namespaces = vec!["default".to_owned(), "kube-system".to_owned()];
        for (_, object, _) in &latest {
            if str_at(object, "/kind") == "Namespace" {
                namespaces.retain(|n| n != str_at(object, "/metadata/name"));
            }
        }
        for name in namespaces {
            self.objects.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}, "status": {"phase": "Active"}}));
        }
        // Configuration and storage first: pods refer to them.
        for (_, object, at) in &latest {
            match str_at(object, "/kind") {
                "ConfigMap" => self.config_maps.push(parse(object)?),
                "LimitRange" => self.limit_ranges.push(parse(object)?),
                "ResourceQuota" => self.quotas.push(parse(object)?),
                "Secret" => {
                    let mut secret: Secret = parse(object)?;
                    ClusterState::redact_secret(&mut secret);
                    self.secrets.push(secret);
                }
                "PersistentVolumeClaim" => {
                    let claim = self.provision(object, *at);
                    self.claims.push(parse(&claim)?);
                }
                _ => {}
            }
        }
        for (key, object, at) in &latest {
            let mut object = Self::stamp(object, *at);
            match str_at(&object, "/kind") {
                "Deployment" => {
                    let revisions = history.get(key).cloned().unwrap_or_default();
                    self.deployment(&mut object, &revisions)?;
                }
                "StatefulSet" => self.stateful_set(&mut object)?,
                "DaemonSet" => self.daemon_set(&mut object)?,
                "Job" => self.job(&mut object)?,
                "Pod" => {
                    let mut pod = object.clone();
                    self.run_pod(&mut pod)?;
                    continue;
                }
                "PersistentVolumeClaim" => object = self.provision(&object, *at),
                _ => {}
            }
            self.objects.push(object);
        }
        let services: Vec<Value> = self
            .objects
            .iter()
            .filter(|o| str_at(o, "/kind") == "Service")
            .cloned()
            .collect();
        for service in services {
            self.endpoints(&service);
        }
        Ok(())
    }

    /// Adds metadata the API server would set: uid, creation time.
    fn stamp(object: &Value, at: Timestamp) -> Value {
        let mut object = object.clone();
        let kind = str_at(&object, "/kind").to_owned();
        let namespace = str_at(&object, "/metadata/namespace").to_owned();
        let name = str_at(&object, "/metadata/name").to_owned();
        object["metadata"]["uid"] = json!(uid(&kind, &namespace, &name));
        object["metadata"]["creationTimestamp"] = json!(at.to_string());
        object
    }

    /// How long ago `at` was, in whole seconds.
    fn age(&self, at: Timestamp) -> u64 {
        self.now.duration_since(at).as_secs().max(0) as u64
    }

    fn add_nodes(&mut self) {
        for node in &self.world.nodes {
            let ready = node.ready.unwrap_or(true);
            let mut labels = node.labels.clone();
            labels.insert("kubernetes.io/hostname".to_owned(), node.name.clone());
            labels.insert("kubernetes.io/os".to_owned(), "linux".to_owned());
            let capacity =
                json!({"cpu": node.cpu, "memory": node.memory, "pods": node.pods.to_string()});
            self.objects.push(json!({
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": node.name, "labels": labels, "uid": uid("Node", "", &node.name), "creationTimestamp": self.created.to_string()},
                "spec": {},
                "status": {
                    "capacity": capacity,
                    "allocatable": capacity,
                    "conditions": [{
                        "type": "Ready",
                        "status": if ready { "True" } else { "Unknown" },
                        "reason": if ready { "KubeletReady" } else { "NodeStatusUnknown" },
                        "message": if ready { "kubelet is posting ready status" } else { "Kubelet stopped posting node status." },
                        "lastHeartbeatTime": self.now.to_string(),
                        "lastTransitionTime": self.created.to_string(),
                    }],
                    "nodeInfo": {"kubeletVersion": "v1.34.1", "containerRuntimeVersion": "containerd://2.1.4", "osImage": "simulated", "architecture": "amd64", "operatingSystem": "linux", "kernelVersion": "6.8.0", "kubeProxyVersion": "", "machineID": "", "systemUUID": "", "bootID": ""},
                },
            }));
        }
    }

    /// Binds a claim when its storage class exists in the world, else leaves it Pending.
    fn provision(&mut self, claim: &Value, at: Timestamp) -> Value {
        let mut claim = Self::stamp(claim, at);
        let class = claim
            .pointer("/spec/storageClassName")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| self.world.storage_classes.first().cloned());
        let bound = class
            .as_ref()
            .is_some_and(|c| self.world.storage_classes.contains(c));
        if bound {
            claim["status"] = json!({"phase": "Bound", "capacity": claim.pointer("/spec/resources/requests").cloned().unwrap_or(json!({}))});
        } else {
            claim["status"] = json!({"phase": "Pending"});
            let message = match &class {
                Some(class) => format!("storageclass.storage.k8s.io \"{class}\" not found"),
                None => {
                    "no persistent volumes available for this claim and no storage class is set"
                        .to_owned()
                }
            };
            let event = SimEvent {
                warning: true,
                reason: "ProvisioningFailed".to_owned(),
                message,
                count: 1 + (self.age(at) / 15) as u32,
                first: at,
                last: self.now,
                component: "persistentvolume-controller",
            };
            let event = Self::event_object(&claim, &event);
            if !self
                .objects
                .iter()
                .any(|o| o["metadata"]["name"] == event["metadata"]["name"])
            {
                self.objects.push(event);
            }
        }
        claim
    }

    fn deployment(
        &mut self,
        deployment: &mut Value,
        revisions: &[(Value, Timestamp)],
    ) -> Result<()> {
        let replicas = deployment
            .pointer("/spec/replicas")
            .and_then(Value::as_u64)
            .unwrap_or(1);
        let name = str_at(deployment, "/metadata/name").to_owned();
        let namespace = str_at(deployment, "/metadata/namespace").to_owned();
        let deployment_uid = str_at(deployment, "/metadata/uid").to_owned();
        let surge = replicas.div_ceil(4).max(1);
        let unavailable = replicas / 4;
        let current_revision = revisions.len();
        let mut new_ready = 0;
        let mut new_total = 0;
        let mut total_ready = 0;
        let mut total = 0;
        // Newest revision first: its readiness decides how far the rollout got.
        for (index, (template, revision_at)) in revisions.iter().enumerate().rev() {
            let revision = index + 1;
            let revision_created = revision_at.to_string();
            let is_new = revision == current_revision;
            if !is_new && revision + 1 != current_revision {
                continue;
            }
            let hash = suffix(&template.to_string(), 10);
            let rs_name = format!("{name}-{hash}");
            let rs_uid = uid("ReplicaSet", &namespace, &rs_name);
            let mut pods = Vec::new();
            // The old revision scales down to nothing once the new one is ready.
            let wanted = if is_new {
                replicas
            } else if new_total > 0 && new_ready == new_total {
                0
            } else {
                replicas.saturating_sub(unavailable)
            };
            let mut count = 0;
            while count < wanted {
                let pod_name = format!("{rs_name}-{}", suffix(&format!("{rs_name}/{count}"), 5));
                let mut labels = template
                    .pointer("/metadata/labels")
                    .cloned()
                    .unwrap_or(json!({}));
                labels["pod-template-hash"] = json!(hash);
                let mut pod = json!({
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": pod_name,
                        "namespace": namespace,
                        "labels": labels,
                        "uid": uid("Pod", &namespace, &pod_name),
                        "creationTimestamp": revision_created,
                        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs_name, "uid": rs_uid, "controller": true, "blockOwnerDeletion": true}],
                    },
                    "spec": template.get("spec").cloned().unwrap_or(json!({})),
                });
                let Some(outcome) = self.run_pod(&mut pod)? else {
                    break;
                };
                count += 1;
                pods.push(outcome.ready);
                // A new revision whose first pod fails is stuck at the surge.
                if is_new && !outcome.ready && revisions.len() > 1 && count >= surge {
                    break;
                }
            }
            let ready = pods.iter().filter(|r| **r).count() as u64;
            let created_pods = pods.len() as u64;
            if is_new {
                new_ready = ready;
                new_total = created_pods;
            }
            total_ready += ready;
            total += created_pods;
            let mut rs_labels = template
                .pointer("/metadata/labels")
                .cloned()
                .unwrap_or(json!({}));
            rs_labels["pod-template-hash"] = json!(hash);
            self.objects.push(json!({
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": rs_name,
                    "namespace": namespace,
                    "uid": rs_uid,
                    "labels": rs_labels,
                    "creationTimestamp": revision_created,
                    "annotations": {"deployment.kubernetes.io/revision": revision.to_string(), "deployment.kubernetes.io/desired-replicas": replicas.to_string()},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": deployment_uid, "controller": true, "blockOwnerDeletion": true}],
                },
                "spec": {"replicas": created_pods, "selector": deployment.pointer("/spec/selector").cloned().unwrap_or(json!({})), "template": template},
                "status": {"replicas": created_pods, "readyReplicas": ready, "availableReplicas": ready},
            }));
        }
        let deadline = deployment
            .pointer("/spec/progressDeadlineSeconds")
            .and_then(Value::as_u64)
            .unwrap_or(600);
        let complete = new_ready == replicas;
        let rollout_started = revisions.last().map_or(self.now, |(_, at)| *at);
        let since = rollout_started.to_string();
        let progressing = if complete {
            json!({"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "message": format!("ReplicaSet has successfully progressed."), "lastUpdateTime": since, "lastTransitionTime": since})
        } else if self.age(rollout_started) > deadline {
            let rs_name = format!(
                "{name}-{}",
                suffix(
                    &revisions
                        .last()
                        .map(|(template, _)| template.clone())
                        .unwrap_or_default()
                        .to_string(),
                    10
                )
            );
            let at = rollout_started
                .checked_add(SignedDuration::from_secs(deadline as i64))
                .unwrap_or(rollout_started)
                .to_string();
            json!({"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": format!("ReplicaSet \"{rs_name}\" has timed out progressing."), "lastUpdateTime": at, "lastTransitionTime": at})
        } else {
            json!({"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated", "message": "ReplicaSet is progressing.", "lastUpdateTime": since, "lastTransitionTime": since})
        };
        let available = total_ready + unavailable >= replicas;
        deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"] =
            json!(current_revision.to_string());
        deployment["metadata"]["generation"] = json!(current_revision);
        deployment["status"] = json!({
            "observedGeneration": current_revision,
            "replicas": total,
            "updatedReplicas": new_total,
            "readyReplicas": total_ready,
            "availableReplicas": total_ready,
            "unavailableReplicas": replicas.saturating_sub(total_ready),
            "conditions": [
                {"type": "Available", "status": if available { "True" } else { "False" }, "reason": if available { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" }, "message": if available { "Deployment has minimum availability." } else { "Deployment does not have minimum availability." }, "lastUpdateTime": since, "lastTransitionTime": since},
                progressing,
            ],
        });
        Ok(())
    }

    fn stateful_set(&mut self, set: &mut Value) -> Result<()> {
        let replicas = set
            .pointer("/spec/replicas")
            .and_then(Value::as_u64)
            .unwrap_or(1);
        let name = str_at(set, "/metadata/name").to_owned();
        let mut ready = 0;
        let mut created = 0;
        for ordinal in 0..replicas {
            let mut pod = Self::owned_pod(set, &format!("{name}-{ordinal}"));
            let Some(outcome) = self.run_pod(&mut pod)? else {
                break;
            };
            created += 1;
            if !outcome.ready {
                break;
            }
            ready += 1;
        }
        set["status"] = json!({"replicas": created, "readyReplicas": ready, "availableReplicas": ready, "currentReplicas": created, "updatedReplicas": created});
        Ok(())
    }

    fn daemon_set(&mut self, set: &mut Value) -> Result<()> {
        let name = str_at(set, "/metadata/name").to_owned();
        let mut ready = 0;
        let nodes = self.world.nodes.len();
        for node in 0..nodes {
            let pod_name = format!("{name}-{}", suffix(&format!("{name}/{node}"), 5));
            let mut pod = Self::owned_pod(set, &pod_name);
            if let Some(outcome) = self.run_pod(&mut pod)? {
                ready += u64::from(outcome.ready);
            }
        }
        set["status"] = json!({"desiredNumberScheduled": nodes, "currentNumberScheduled": nodes, "numberReady": ready, "numberAvailable": ready, "numberMisscheduled": 0});
        Ok(())
    }

    fn job(&mut self, job: &mut Value) -> Result<()> {
        let name = str_at(job, "/metadata/name").to_owned();
        let started = str_at(job, "/metadata/creationTimestamp").to_owned();
        let backoff_limit = job
            .pointer("/spec/backoffLimit")
            .and_then(Value::as_u64)
            .unwrap_or(6);
        let mut pod = Self::owned_pod(job, &format!("{name}-{}", suffix(&name, 5)));
        let outcome = self.run_pod(&mut pod)?;
        let at = self.now.to_string();
        job["status"] = match outcome {
            Some(outcome) if outcome.crashed => {
                json!({"failed": backoff_limit + 1, "startTime": started, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit", "lastTransitionTime": at, "lastProbeTime": at}]})
            }
            Some(outcome) if outcome.ready => {
                json!({"succeeded": 1, "startTime": started, "completionTime": at, "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": at, "lastProbeTime": at}]})
            }
            _ => json!({"active": 1, "startTime": started}),
        };
        Ok(())
    }

    /// A pod of `owner`'s template, created when its owner was.
    fn owned_pod(owner: &Value, pod_name: &str) -> Value {
        let kind = str_at(owner, "/kind");
        let namespace = str_at(owner, "/metadata/namespace");
        let template = owner
            .pointer("/spec/template")
            .cloned()
            .unwrap_or(json!({}));
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "namespace": namespace,
                "labels": template.pointer("/metadata/labels").cloned().unwrap_or(json!({})),
                "uid": uid("Pod", namespace, pod_name),
                "creationTimestamp": str_at(owner, "/metadata/creationTimestamp"),
                "ownerReferences": [{"apiVersion": str_at(owner, "/apiVersion"), "kind": kind, "name": str_at(owner, "/metadata/name"), "uid": str_at(owner, "/metadata/uid"), "controller": true, "blockOwnerDeletion": true}],
            },
            "spec": template.get("spec").cloned().unwrap_or(json!({})),
        })
    }

    /// What the namespace's admission does to a new pod: LimitRange defaults fill in missing
    /// container requests and limits, and a ResourceQuota on `pods` refuses one pod too many
    /// (`Err` carries the API server's message).
    fn admit(&self, pod: &mut Value) -> std::result::Result<(), String> {
        let namespace = str_at(pod, "/metadata/namespace").to_owned();
        let name = str_at(pod, "/metadata/name").to_owned();
        for quota in self
            .quotas
            .iter()
            .filter(|q| q.metadata.namespace.as_deref() == Some(namespace.as_str()))
        {
            let Some(hard) = quota
                .spec
                .as_ref()
                .and_then(|s| s.hard.as_ref())
                .and_then(|h| h.get("pods"))
                .and_then(|q| q.0.parse::<usize>().ok())
            else {
                continue;
            };
            let used = self
                .pods
                .iter()
                .filter(|p| str_at(p, "/metadata/namespace") == namespace)
                .count();
            if used >= hard {
                return Err(format!(
                    "pods \"{name}\" is forbidden: exceeded quota: {}, requested: pods=1, used: pods={used}, limited: pods={hard}",
                    quota.metadata.name.as_deref().unwrap_or_default()
                ));
            }
        }
        for range in self
            .limit_ranges
            .iter()
            .filter(|r| r.metadata.namespace.as_deref() == Some(namespace.as_str()))
        {
            for item in range
                .spec
                .as_ref()
                .map(|s| s.limits.as_slice())
                .unwrap_or_default()
                .iter()
                .filter(|item| item.type_ == "Container")
            {
                let Some(containers) = pod
                    .pointer_mut("/spec/containers")
                    .and_then(Value::as_array_mut)
                else {
                    continue;
                };
                for container in containers {
                    for (field, defaults) in [
                        ("requests", &item.default_request),
                        ("limits", &item.default),
                    ] {
                        for (resource, quantity) in defaults.iter().flatten() {
                            let resources = &mut container["resources"];
                            if resources.get(field).and_then(|f| f.get(resource)).is_none() {
                                resources[field][resource] = json!(quantity.0);
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Admits a pod, simulates it and records it with its events and logs; `None` when
    /// admission refused it (the refusal is an event on its owner).
    fn run_pod(&mut self, pod: &mut Value) -> Result<Option<PodOutcome>> {
        if let Err(message) = self.admit(pod) {
            let owner = json!({
                "apiVersion": str_at(pod, "/metadata/ownerReferences/0/apiVersion"),
                "kind": str_at(pod, "/metadata/ownerReferences/0/kind"),
                "metadata": {
                    "name": str_at(pod, "/metadata/ownerReferences/0/name"),
                    "namespace": str_at(pod, "/metadata/namespace"),
                    "uid": str_at(pod, "/metadata/ownerReferences/0/uid"),
                },
            });
            let created = timestamp_at(pod, "/metadata/creationTimestamp").unwrap_or(self.now);
            let event = SimEvent {
                warning: true,
                reason: "FailedCreate".to_owned(),
                message: format!("Error creating: {message}"),
                count: 1,
                first: created,
                last: self.now,
                component: "replicaset-controller",
            };
            self.objects.push(Self::event_object(&owner, &event));
            return Ok(None);
        }
        let typed: Pod = parse(pod)?;
        let created = typed
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(self.created, |t| t.0);
        let namespace_name = typed.metadata.namespace.clone().unwrap_or_default();
        let in_namespace = |ns: &Option<String>| ns.as_deref() == Some(namespace_name.as_str());
        let config_maps: Vec<ConfigMap> = self
            .config_maps
            .iter()
            .filter(|c| in_namespace(&c.metadata.namespace))
            .cloned()
            .collect();
        let secrets: Vec<Secret> = self
            .secrets
            .iter()
            .filter(|s| in_namespace(&s.metadata.namespace))
            .cloned()
            .collect();
        let claims: Vec<PersistentVolumeClaim> = self
            .claims
            .iter()
            .filter(|c| in_namespace(&c.metadata.namespace))
            .cloned()
            .collect();
        let namespace = Namespace {
            config_maps: &config_maps,
            secrets: &secrets,
            claims: &claims,
        };
        let outcome = pod::simulate(
            self.world,
            &mut self.scheduler,
            namespace,
            &typed,
            created,
            self.now,
        );
        if let Some(node) = &outcome.node {
            pod["spec"]["nodeName"] = json!(node);
        }
        let mut status = outcome.status.clone();
        let is_job_pod = str_at(pod, "/metadata/ownerReferences/0/kind") == "Job";
        if is_job_pod && outcome.ready {
            status["phase"] = json!("Succeeded");
        }
        pod["status"] = status;
        for event in &outcome.events {
            let event = Self::event_object(pod, event);
            self.objects.push(event);
        }
        for log in &outcome.logs {
            self.logs.push((
                LogKey {
                    namespace: namespace_name.clone(),
                    pod: typed.metadata.name.clone().unwrap_or_default(),
                    container: log.container.clone(),
                    previous: log.previous,
                },
                log.text.clone(),
            ));
        }
        self.pods.push(pod.clone());
        self.objects.push(pod.clone());
        Ok(Some(outcome))
    }

    fn event_object(object: &Value, event: &SimEvent) -> Value {
        let name = str_at(object, "/metadata/name");
        let namespace = str_at(object, "/metadata/namespace");
        let kind = str_at(object, "/kind");
        let event_name = format!(
            "{name}.{:016x}",
            stable_hash(&format!(
                "{kind}/{namespace}/{name}/{}/{}",
                event.reason, event.message
            ))
        );
        json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": event_name, "namespace": namespace, "creationTimestamp": event.first.to_string()},
            "involvedObject": {"apiVersion": str_at(object, "/apiVersion"), "kind": kind, "name": name, "namespace": namespace, "uid": str_at(object, "/metadata/uid")},
            "reason": event.reason,
            "message": event.message,
            "type": if event.warning { "Warning" } else { "Normal" },
            "count": event.count,
            "firstTimestamp": event.first.to_string(),
            "lastTimestamp": event.last.to_string(),
            "source": {"component": event.component},
            "reportingComponent": event.component,
        })
    }

    /// Builds the EndpointSlice of a Service from the pods its selector matches.
    fn endpoints(&mut self, service: &Value) {
        let Some(selector) = service
            .pointer("/spec/selector")
            .and_then(Value::as_object)
            .filter(|s| !s.is_empty())
        else {
            return;
        };
        let name = str_at(service, "/metadata/name");
        let namespace = str_at(service, "/metadata/namespace");
        let mut endpoints = Vec::new();
        let mut ports = Vec::new();
        for pod in &self.pods {
            if str_at(pod, "/metadata/namespace") != namespace {
                continue;
            }
            let labels = pod.pointer("/metadata/labels").and_then(Value::as_object);
            if !selector
                .iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
            {
                continue;
            }
            let Some(ip) = pod.pointer("/status/podIP").and_then(Value::as_str) else {
                continue;
            };
            let ready = pod
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                });
            endpoints.push(json!({
                "addresses": [ip],
                "conditions": {"ready": ready, "serving": ready, "terminating": false},
                "nodeName": str_at(pod, "/spec/nodeName"),
                "targetRef": {"kind": "Pod", "name": str_at(pod, "/metadata/name"), "namespace": namespace, "uid": str_at(pod, "/metadata/uid")},
            }));
            if ports.is_empty() {
                for port in service
                    .pointer("/spec/ports")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let target = port
                        .get("targetPort")
                        .cloned()
                        .unwrap_or_else(|| port["port"].clone());
                    let number = match &target {
                        Value::String(port_name) => pod
                            .pointer("/spec/containers")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                            .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
                            .find(|p| p["name"].as_str() == Some(port_name))
                            .map(|p| p["containerPort"].clone()),
                        other => Some(other.clone()),
                    };
                    if let Some(number) = number {
                        ports.push(json!({"name": port.get("name").cloned().unwrap_or(json!("")), "port": number, "protocol": "TCP"}));
                    }
                }
            }
        }
        let slice_name = format!("{name}-{}", suffix(&format!("{namespace}/{name}"), 5));
        self.objects.push(json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": slice_name,
                "namespace": namespace,
                "labels": {"kubernetes.io/service-name": name, "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
                "uid": uid("EndpointSlice", namespace, &slice_name),
                "creationTimestamp": str_at(service, "/metadata/creationTimestamp"),
            },
            "addressType": "IPv4",
            "endpoints": if endpoints.is_empty() { Value::Null } else { Value::Array(endpoints) },
            "ports": if ports.is_empty() { Value::Null } else { Value::Array(ports) },
        }));
    }
}

fn timestamp_at(value: &Value, pointer: &str) -> Option<Timestamp> {
    value.pointer(pointer)?.as_str()?.parse().ok()
}

fn parse<T: serde::de::DeserializeOwned>(value: &Value) -> Result<T> {
    serde_json::from_value(value.clone()).map_err(|e| {
        Error::World(format!(
            "{} {}: {e}",
            str_at(value, "/kind"),
            str_at(value, "/metadata/name")
        ))
    })
}

#[cfg(test)]
mod tests;
