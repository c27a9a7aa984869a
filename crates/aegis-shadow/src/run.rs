//! Running a verification: build the shadow in order (namespace, isolation, configuration,
//! Services, clones), watch it interval by interval until the verdict engine is certain, keep
//! the evidence, and delete the shadow — also when anything fails on the way.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aegis_cluster::{Cluster, ClusterWrite, DryRun, ObjectRef, WriteError};
use aegis_core::change::Basis;
use aegis_core::verification::{Baseline, CandidateOutcome, EvidenceBundle};
use aegis_core::{
    Category, ClusterState, Fix, ResourceKind, ResourceRef, Verdict, VerificationPlan,
    VerificationResult, patch,
};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::checks;
use crate::clone::{
    self, CREATED_ANNOTATION, EXPIRES_ANNOTATION, FIX_HASH_ANNOTATION, INCIDENT_ANNOTATION,
    References, SOURCE_ANNOTATION, VERDICT_ANNOTATION, Variant,
};
use crate::verdict::{Decision, Engine, Observation};
use crate::{Error, Limits, NAMESPACE_PREFIX, Result};

/// How long a shadow's RoleBinding may take to reach the API server's authorizer, and how
/// often it is asked meanwhile.
const GRANT_PATIENCE: Duration = Duration::from_secs(5);
const GRANT_RETRY: Duration = Duration::from_millis(100);

/// What to verify: an incident's workload, its category, the fixes to try in order.
#[derive(Debug, Clone)]
pub struct ShadowRequest<'a> {
    /// The production state the workload, its configuration and its Services are read from.
    pub state: &'a ClusterState,
    pub workload: ResourceRef,
    pub category: Category,
    /// Candidate fixes, best first; the first that verifies is the one proposed.
    pub fixes: Vec<Fix>,
    pub plan: VerificationPlan,
    pub incident: Option<String>,
    pub limits: Limits,
}

/// The shadows this process created and has not deleted yet, so an interrupted command (Ctrl-C)
/// can delete them before it exits.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    live: Arc<Mutex<BTreeSet<String>>>,
}

impl Tracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        // A poisoned set of names is still a set of names.
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn add(&self, name: &str) {
        self.lock().insert(name.to_owned());
    }

    fn remove(&self, name: &str) {
        self.lock().remove(name);
    }

    /// The shadows still to delete.
    pub fn pending(&self) -> Vec<String> {
        self.lock().iter().cloned().collect()
    }

    /// Deletes every shadow still tracked; returns those it could not delete, with why.
    pub async fn clean_up(&self, cluster: &dyn ClusterWrite) -> Vec<(String, String)> {
        let mut failed = Vec::new();
        for name in self.pending() {
            let reference = ObjectRef::new("v1", "Namespace", None, &name);
            match cluster.delete(&reference).await {
                Ok(_) => self.remove(&name),
                Err(e) => failed.push((name, e.to_string())),
            }
        }
        failed
    }
}

/// Verifies the request's fixes one after the other in shadows on `shadow_cluster`, after a
/// server-side dry run of each on `production` (the only request made to it), and stops at the
/// first that verifies. The result lists every candidate tried.
pub async fn verify(
    production: &dyn ClusterWrite,
    shadow_cluster: &dyn Cluster,
    request: &ShadowRequest<'_>,
    tracker: &Tracker,
) -> Result<VerificationResult> {
    let mut outcomes = Vec::new();
    let mut chosen: Option<VerificationResult> = None;
    for fix in request
        .fixes
        .iter()
        .take(request.limits.max_candidates.max(1))
    {
        let result = verify_one(production, shadow_cluster, request, fix, tracker).await?;
        outcomes.push(CandidateOutcome {
            fix_summary: fix.summary.clone(),
            verdict: result.verdict,
            reason: result.reason.clone(),
        });
        let verified = result.verdict == Verdict::Successful;
        if chosen.is_none() || verified {
            chosen = Some(result);
        }
        if verified {
            break;
        }
    }
    let mut result = chosen.unwrap_or_else(|| VerificationResult::skipped("no fix to verify"));
    result.candidates = outcomes;
    Ok(result)
}

/// The fix's patch applied to the production object, as the candidate's source.
#[derive(Debug)]
struct Prepared {
    /// The workload cloned (production's), and the same with the fix applied.
    workload: Value,
    patched_workload: Value,
    /// Services cloned: production's, and the same after the fix.
    services: Vec<Value>,
    patched_services: Vec<Value>,
    template_diff: Vec<String>,
}

fn prepare(request: &ShadowRequest<'_>, fix: &Fix) -> Result<Prepared> {
    let lookup = aegis_rules::Lookup::new(request.state);
    let object = |reference: &ResourceRef| {
        lookup
            .object(reference)
            .ok_or_else(|| Error::WorkloadMissing {
                workload: reference.to_string(),
            })
    };
    let target = object(&fix.target)?;
    let decision = aegis_rules::check_fix(&lookup, fix, &target);
    if !decision.allowed {
        return Err(Error::PolicyDenied {
            violations: decision.violations_text(),
        });
    }
    let patched = patch::apply(&target, fix.patch_type, &fix.patch).map_err(|e| {
        Error::PatchDoesNotApply {
            target: fix.target.to_string(),
            reason: e.to_string(),
        }
    })?;
    if fix.target.kind == ResourceKind::Service {
        let selector = patched
            .pointer("/spec/selector")
            .cloned()
            .unwrap_or_default();
        let workload = workload_selected_by(&lookup, fix.target.namespace_str(), &selector)
            .or_else(|| {
                (request.workload.kind != ResourceKind::Service)
                    .then(|| lookup.object(&request.workload))
                    .flatten()
            })
            .ok_or_else(|| Error::WorkloadMissing {
                workload: format!(
                    "a workload whose pods the fixed selector of {} picks",
                    fix.target
                ),
            })?;
        let before = target.get("spec").cloned().unwrap_or_default();
        let after = patched.get("spec").cloned().unwrap_or_default();
        return Ok(Prepared {
            patched_workload: workload.clone(),
            workload,
            services: vec![target],
            patched_services: vec![patched],
            template_diff: patch::diff(&before, &after, 3),
        });
    }
    let workload_ref = &fix.target;
    let services: Vec<Value> = aegis_rules::services_selecting(&lookup, workload_ref)
        .iter()
        .filter_map(|name| {
            lookup.object(&ResourceRef::namespaced(
                ResourceKind::Service,
                workload_ref.namespace_str(),
                name,
            ))
        })
        .collect();
    let template = |object: &Value| {
        object
            .pointer("/spec/template")
            .or_else(|| object.get("spec"))
            .cloned()
            .unwrap_or_default()
    };
    Ok(Prepared {
        template_diff: patch::diff(&template(&target), &template(&patched), 3),
        workload: target,
        patched_workload: patched,
        patched_services: services.clone(),
        services,
    })
}

/// The first workload (Deployment, StatefulSet, DaemonSet, bare Pod) in `namespace` whose pods
/// carry every label of `selector`, as JSON.
fn workload_selected_by(
    lookup: &aegis_rules::Lookup<'_>,
    namespace: &str,
    selector: &Value,
) -> Option<Value> {
    let selector = selector.as_object().filter(|s| !s.is_empty())?;
    let (workload, _) = lookup
        .pod_template_labels(namespace)
        .iter()
        .find(|(_, labels)| {
            selector
                .iter()
                .all(|(key, value)| labels.get(key).map(String::as_str) == value.as_str())
        })?;
    lookup.object(workload)
}

/// Bytes as lower-case hexadecimal.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut text, byte| {
        // Writing to a String cannot fail.
        let _ = write!(text, "{byte:02x}");
        text
    })
}

/// A short hash of a fix's patch, as the shadow's annotation carries it.
pub fn fix_hash(fix: &Fix) -> String {
    let digest = Sha256::digest(fix.patch.to_string().as_bytes());
    hex(&digest[..6])
}

/// The objects of one shadow, in creation order: isolation first, workloads last.
fn shadow_objects(
    request: &ShadowRequest<'_>,
    prepared: &Prepared,
    namespace: &str,
) -> Result<(Vec<Value>, Vec<String>)> {
    let source_namespace = request.workload.namespace_str();
    let clone_error = |source| Error::Clone {
        workload: request.workload.to_string(),
        source,
    };
    let baseline = clone::clone_workload(&prepared.workload, namespace, Variant::Baseline)
        .map_err(clone_error)?;
    let candidate =
        clone::clone_workload(&prepared.patched_workload, namespace, Variant::Candidate)
            .map_err(clone_error)?;
    let mut references = References::default();
    for clone in [&baseline, &candidate] {
        let spec = clone
            .pointer("/spec/template/spec")
            .or_else(|| clone.pointer("/spec/jobTemplate/spec/template/spec"))
            .or_else(|| clone.get("spec"))
            .cloned()
            .unwrap_or_default();
        references.collect(&spec);
    }
    let mut objects = clone::isolation_objects(namespace, 4);
    let mut placeholders = Vec::new();
    for config_map in &request.state.config_maps {
        let name = config_map.metadata.name.as_deref().unwrap_or_default();
        if config_map.metadata.namespace.as_deref() == Some(source_namespace)
            && references.config_maps.contains(name)
            && let Ok(value) = serde_json::to_value(config_map)
        {
            objects.push(clone::clone_config_map(&value, namespace));
        }
    }
    for secret in &request.state.secrets {
        let name = secret.metadata.name.as_deref().unwrap_or_default();
        if secret.metadata.namespace.as_deref() != Some(source_namespace) {
            continue;
        }
        let referenced = references.secrets.get(name);
        let pull = references.pull_secrets.contains(name);
        if referenced.is_none() && !pull {
            continue;
        }
        // The keys the source knows (a snapshot, the simulator) stay exactly those, so a key
        // that is missing in production is missing in the shadow; metadata-only sources give
        // no keys, and then the referenced ones are used.
        let known: BTreeSet<String> = secret.data.iter().flat_map(|d| d.keys().cloned()).collect();
        let keys = if known.is_empty() {
            referenced.cloned().unwrap_or_default()
        } else {
            known
        };
        objects.push(clone::placeholder_secret(
            name,
            namespace,
            secret.type_.as_deref(),
            &keys,
        ));
        placeholders.push(format!(
            "Secret {name} is a placeholder with the same keys ({}) and dummy values",
            keys.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    for service in &prepared.services {
        objects.push(clone::clone_service(service, namespace, Variant::Baseline));
    }
    for service in &prepared.patched_services {
        objects.push(clone::clone_service(service, namespace, Variant::Candidate));
    }
    objects.push(baseline);
    objects.push(candidate);
    Ok((objects, placeholders))
}

/// The clones of one variant as workload references, as the analyzers name them.
fn clone_refs(objects: &[Value], namespace: &str, variant: Variant) -> Vec<ResourceRef> {
    objects
        .iter()
        .filter_map(|object| {
            let name = object.pointer("/metadata/name")?.as_str()?;
            let kind = ResourceKind::from_kind(object.get("kind")?.as_str()?)?;
            (name.ends_with(variant.as_str())
                && matches!(
                    kind,
                    ResourceKind::Deployment
                        | ResourceKind::StatefulSet
                        | ResourceKind::ReplicaSet
                        | ResourceKind::Pod
                        | ResourceKind::Job
                        | ResourceKind::Service
                ))
            .then(|| ResourceRef::namespaced(kind, namespace, name))
        })
        .collect()
}

fn seconds_between(from: Timestamp, to: Timestamp) -> f64 {
    to.duration_since(from).as_secs_f64().max(0.0)
}

/// A shadow whose objects exist: what watching it needs.
#[derive(Debug)]
pub struct Created {
    /// The shadow namespace.
    pub namespace: String,
    /// When it was created, on the cluster's clock.
    pub created: Timestamp,
    /// What the shadow holds instead of the real thing.
    pub placeholders: Vec<String>,
    namespace_object: Value,
    objects: Vec<Value>,
    prepared: Prepared,
}

/// Why a fix was not run in a shadow although nothing failed: the API server refused the patch
/// in its dry run, which is the fix's verdict.
#[derive(Debug)]
pub enum Creation {
    Created(Box<Created>),
    Refused(Box<VerificationResult>),
}

/// Checks the fix (policy, then a server-side dry run on the production target), and creates a
/// shadow for it: the namespace first, then isolation, configuration, Services and the two
/// clones. On any error after the namespace exists, the namespace is deleted again.
pub async fn create(
    production: &dyn ClusterWrite,
    shadow_cluster: &dyn Cluster,
    request: &ShadowRequest<'_>,
    fix: &Fix,
    tracker: &Tracker,
) -> Result<Creation> {
    let prepared = prepare(request, fix)?;
    // The only request to the production target: would the API server take this patch?
    let target = ObjectRef::of(&prepared_target(&prepared, fix))?;
    if let Err(e) = production
        .patch(&target, fix.patch_type, &fix.patch, DryRun::All)
        .await
    {
        return Ok(Creation::Refused(Box::new(VerificationResult {
            reason: format!("the API server rejects the patch in a dry run: {e}"),
            verdict: Verdict::Failed,
            ..VerificationResult::skipped("")
        })));
    }
    crate::check_capacity(shadow_cluster, request.limits.max_concurrent).await?;
    let created = shadow_cluster.now();
    let hash = fix_hash(fix);
    let id = hex(&Sha256::digest(
        format!("{}/{hash}/{}", request.workload, created.as_nanosecond()).as_bytes(),
    )[..4]);
    let namespace = format!("{NAMESPACE_PREFIX}{id}");
    let expires = created
        .checked_add(SignedDuration::try_from(request.limits.ttl).unwrap_or(SignedDuration::ZERO))
        .unwrap_or(created);
    let mut annotations = vec![
        (SOURCE_ANNOTATION, request.workload.to_string()),
        (FIX_HASH_ANNOTATION, hash),
        (CREATED_ANNOTATION, created.to_string()),
        (EXPIRES_ANNOTATION, expires.to_string()),
    ];
    if let Some(incident) = &request.incident {
        annotations.push((INCIDENT_ANNOTATION, incident.clone()));
    }
    let namespace_object = clone::shadow_namespace(&namespace, &annotations);
    let (objects, placeholders) = shadow_objects(request, &prepared, &namespace)?;
    shadow_cluster.apply(&namespace_object, DryRun::No).await?;
    tracker.add(&namespace);
    if let Some(grant) = &request.limits.grant
        && let Err(e) = granted(shadow_cluster, &namespace, grant, objects.first()).await
    {
        remove(shadow_cluster, &namespace, tracker).await;
        return Err(e.into());
    }
    for object in &objects {
        if let Err(e) = shadow_cluster.apply(object, DryRun::No).await {
            remove(shadow_cluster, &namespace, tracker).await;
            return Err(e.into());
        }
    }
    Ok(Creation::Created(Box::new(Created {
        namespace,
        created,
        placeholders,
        namespace_object,
        objects,
        prepared,
    })))
}

/// Writes the shadow's RoleBinding, then waits until the API server's authorizer has learnt of
/// it (it follows RoleBindings by its own watch) before the shadow's first write: asked with
/// access reviews, so no write is tried and refused meanwhile.
async fn granted(
    cluster: &dyn ClusterWrite,
    namespace: &str,
    grant: &aegis_core::settings::ShadowGrant,
    first: Option<&Value>,
) -> std::result::Result<(), WriteError> {
    cluster
        .apply(&clone::grant_binding(namespace, grant), DryRun::No)
        .await?;
    let Some(first) = first else {
        return Ok(());
    };
    let mut target = ObjectRef::of(first)?;
    // A create is what a server-side apply of a new object is authorized as.
    target.name = String::new();
    let mut waited = Duration::ZERO;
    while !cluster.may("create", &target).await? {
        if waited >= GRANT_PATIENCE {
            return Err(WriteError::Refused {
                action: "create",
                object: target.to_string(),
                reason: format!(
                    "the shadow's RoleBinding to ClusterRole {} did not take effect within {} s; check that the ClusterRole exists and grants what a shadow holds",
                    grant.cluster_role,
                    GRANT_PATIENCE.as_secs()
                ),
            });
        }
        tokio::time::sleep(GRANT_RETRY).await;
        waited += GRANT_RETRY;
    }
    Ok(())
}

/// Deletes a shadow namespace; a failure is logged, the TTL collects it later.
async fn remove(cluster: &dyn ClusterWrite, namespace: &str, tracker: &Tracker) {
    let reference = ObjectRef::new("v1", "Namespace", None, namespace);
    match cluster.delete(&reference).await {
        Ok(_) => tracker.remove(namespace),
        Err(e) => {
            tracing::warn!(namespace, error = %e, "could not delete the shadow; it expires by its TTL");
        }
    }
}

async fn verify_one(
    production: &dyn ClusterWrite,
    shadow_cluster: &dyn Cluster,
    request: &ShadowRequest<'_>,
    fix: &Fix,
    tracker: &Tracker,
) -> Result<VerificationResult> {
    let created = match create(production, shadow_cluster, request, fix, tracker).await? {
        Creation::Created(created) => created,
        Creation::Refused(result) => return Ok(*result),
    };
    let outcome = watch(shadow_cluster, request, fix, &created).await;
    let outcome = match outcome {
        Ok(mut result) if request.limits.keep => {
            let mut labelled = created.namespace_object.clone();
            labelled["metadata"]["annotations"][VERDICT_ANNOTATION] =
                json!(result.verdict.as_str());
            result.shadow = Some(created.namespace.clone());
            shadow_cluster
                .apply(&labelled, DryRun::No)
                .await
                .map(|_| result)
                .map_err(Error::from)
        }
        Ok(mut result) => {
            result.shadow = Some(created.namespace.clone());
            Ok(result)
        }
        Err(e) => Err(e),
    };
    // Delete unless kept; on any error, delete whatever was created.
    if !request.limits.keep || outcome.is_err() {
        remove(shadow_cluster, &created.namespace, tracker).await;
    } else {
        tracker.remove(&created.namespace);
    }
    outcome
}

/// The production object the fix patches (for its dry run).
fn prepared_target(prepared: &Prepared, fix: &Fix) -> Value {
    if fix.target.kind == ResourceKind::Service {
        prepared.services.first().cloned().unwrap_or_default()
    } else {
        prepared.workload.clone()
    }
}

/// The production object with the fix applied (the candidate's source).
fn patched_target(prepared: &Prepared, fix: &Fix) -> Value {
    if fix.target.kind == ResourceKind::Service {
        prepared
            .patched_services
            .first()
            .cloned()
            .unwrap_or_default()
    } else {
        prepared.patched_workload.clone()
    }
}

/// Watches a created shadow to a verdict, and keeps the evidence.
async fn watch(
    cluster: &dyn Cluster,
    request: &ShadowRequest<'_>,
    fix: &Fix,
    shadow: &Created,
) -> Result<VerificationResult> {
    let Created {
        namespace,
        created,
        objects,
        prepared,
        placeholders,
        ..
    } = shadow;
    let (namespace, created) = (namespace.as_str(), *created);
    let baseline_refs = clone_refs(objects, namespace, Variant::Baseline);
    let candidate_refs = clone_refs(objects, namespace, Variant::Candidate);
    let plan = &request.plan;
    let mut engine = Engine::new(request.category, plan);
    let interval = std::time::Duration::from_secs(plan.interval_seconds.max(1));
    let mut first: Option<ClusterState> = None;
    let mut looked = created;
    // The last look also gives what the baseline showed besides the incident, for the report
    // when it never reproduced.
    let (verdict, reason, last, seen_on_baseline) = loop {
        // Looks are scheduled an interval apart; the time spent reading counts against the wait,
        // and a watch event brings the next look sooner.
        let since =
            std::time::Duration::try_from(cluster.now().duration_since(looked)).unwrap_or_default();
        let wait = interval
            .saturating_sub(since)
            .max(std::time::Duration::from_millis(50));
        cluster.wait(namespace, wait).await?;
        looked = cluster.now();
        let state = cluster
            .load(&aegis_cluster::Scope::shadow(namespace))
            .await
            .map_err(|source| Error::Read {
                namespace: namespace.to_owned(),
                source,
            })?
            .state;
        let now = cluster.now();
        let candidate_pods = checks::variant_pods(&state, Variant::Candidate);
        let (mut on_baseline, on_candidate) =
            checks::diagnoses(&state, &baseline_refs, &candidate_refs);
        let observation = Observation {
            elapsed_ms: u64::try_from(now.duration_since(created).as_millis()).unwrap_or(0),
            checks: plan
                .checks
                .iter()
                .map(|check| {
                    (
                        check.clone(),
                        checks::evaluate(check, &state, &candidate_pods),
                    )
                })
                .collect(),
            baseline_signature: on_baseline.remove(&request.category),
            candidate_categories: on_candidate.into_keys().collect(),
        };
        let decision = engine.observe(observation);
        if first.is_none() {
            first = Some(state.clone());
        }
        if let Decision::Done { verdict, reason } = decision {
            let seen: Vec<String> = on_baseline.into_keys().map(|c| c.id().to_owned()).collect();
            break (verdict, reason, state, seen);
        }
    };
    let duration = seconds_between(created, cluster.now());
    let first = first.unwrap_or_default();
    let evidence = EvidenceBundle {
        patch: fix.patch.clone(),
        template_diff: prepared.template_diff.clone(),
        placeholders: placeholders.clone(),
        baseline_before: statuses(&first, Variant::Baseline),
        baseline_after: statuses(&last, Variant::Baseline),
        candidate_before: statuses(&first, Variant::Candidate),
        candidate_after: statuses(&last, Variant::Candidate),
        events: events(&last),
        logs: logs(&last),
        candidate_ready_seconds: ready_since(&last, created),
    };
    let signature = engine.reproduced().map(<[String]>::to_vec);
    Ok(VerificationResult {
        verdict,
        reason,
        health_score: engine.health_score(),
        shadow: None,
        baseline: Some(Baseline {
            reproduced: signature.is_some(),
            signature: signature.unwrap_or(seen_on_baseline),
            reproduced_after_seconds: engine.reproduced_after_ms().map(|ms| ms as f64 / 1000.0),
        }),
        checks: engine.results().to_vec(),
        candidates: Vec::new(),
        duration_seconds: Some(duration),
        evidence: Some(Box::new(evidence)),
        target_basis: Some(Basis::of(&prepared_target(prepared, fix), &fix.patch)),
        fix_result: Some(Basis::of(&patched_target(prepared, fix), &fix.patch)),
    })
}

/// Seconds from `created` until every candidate pod was Ready (the latest Ready transition), or
/// `None` while one is not.
fn ready_since(state: &ClusterState, created: Timestamp) -> Option<f64> {
    let pods = checks::variant_pods(state, Variant::Candidate);
    let mut latest: Option<Timestamp> = None;
    for pod in &pods {
        let at = aegis_core::state::ready_condition(pod)?
            .last_transition_time
            .as_ref()?
            .0;
        latest = Some(latest.map_or(at, |l| l.max(at)));
    }
    latest.map(|at| seconds_between(created, at))
}

/// The container statuses of a variant's pods, by pod.
fn statuses(state: &ClusterState, variant: Variant) -> Value {
    let pods: serde_json::Map<String, Value> = checks::variant_pods(state, variant)
        .into_iter()
        .map(|pod| {
            let statuses = pod
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|s| serde_json::to_value(s).ok())
                .unwrap_or(Value::Null);
            (pod.metadata.name.clone().unwrap_or_default(), statuses)
        })
        .collect();
    Value::Object(pods)
}

/// The shadow namespace's events, one line each.
fn events(state: &ClusterState) -> Vec<String> {
    let mut lines: Vec<String> = state
        .events
        .iter()
        .map(|e| {
            format!(
                "{}/{}: {}: {}",
                e.involved_object.kind.as_deref().unwrap_or_default(),
                e.involved_object.name.as_deref().unwrap_or_default(),
                e.reason.as_deref().unwrap_or_default(),
                e.message.as_deref().unwrap_or_default()
            )
        })
        .collect();
    lines.dedup();
    lines
}

/// The last lines of every container log in the shadow.
fn logs(state: &ClusterState) -> Vec<String> {
    let mut lines = Vec::new();
    for (key, text) in &state.logs {
        let tail: Vec<&str> = text.lines().rev().take(5).collect();
        for line in tail.into_iter().rev() {
            lines.push(format!(
                "{}/{}{}: {line}",
                key.pod,
                key.container,
                if key.previous { " (previous)" } else { "" }
            ));
        }
    }
    lines
}
