//! The detector: analyzes each namespace a watch event touched (gathered for
//! `operator.debounce_millis`), and records what it finds as `Incident`s — one per (workload,
//! category), named by the incident's stable id — and resolves the incidents it no longer
//! finds. Only watched workloads count: in a namespace the namespace selector chooses,
//! annotated `aegis.io/monitor: "true"` (the workload or the failing object), or reported by a
//! K8sGPT `Result`.
//!
//! With an LLM (`llm.backend`), each diagnosis the rules make is recorded at once, then the LLM
//! is asked for its second opinion on it (at most `llm.max_incidents` a pass), and the Incident
//! records what came of it (`status.consulted`). The opinion stands for as long as the rules
//! make the same diagnosis: the LLM is asked again only when the diagnosis changes, or a
//! failed call is a few minutes old.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aegis_agent::{AnalyzeRequest, LabelSelector};
use aegis_core::crd::{IncidentResource, IncidentSpec};
use aegis_core::lifecycle::{Action, Phase};
use aegis_core::{ClusterState, Incident, ResourceRef, SourceKind};
use kube::api::Api;

use crate::watch::{CLUSTER, Changed, Marked, Part, absorb};
use crate::{Context, Result, incidents, metrics};

/// The annotation that asks the operator to watch an object.
pub const MONITOR_ANNOTATION: &str = "aegis.io/monitor";
/// Who the operator's transitions are recorded as.
pub const OPERATOR: &str = "operator";
/// How often namespaces with open incidents or unready pods are analyzed again without a
/// watch event (a failure that becomes reportable only with time, such as a pod pending past
/// the grace period, changes nothing in the cluster).
const RESYNC: Duration = Duration::from_secs(60);
/// How long after a failed LLM call the same diagnosis is asked about again.
const LLM_RETRY: Duration = Duration::from_secs(300);

pub(crate) async fn run(context: Arc<Context>) -> Result<()> {
    let debounce = Duration::from_millis(context.settings.operator.debounce_millis);
    let mut resync = tokio::time::interval(RESYNC);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate; the first pass comes from the caches' initial events.
    resync.tick().await;
    let whole = |namespaces: BTreeSet<String>| -> Marked {
        namespaces
            .into_iter()
            .map(|namespace| (namespace, Changed::All))
            .collect()
    };
    let mut failed_before: BTreeSet<String> = BTreeSet::new();
    loop {
        let due = context.caches.dirty.next_due();
        let mut marked = tokio::select! {
            taken = context.caches.dirty.take() => taken,
            _ = resync.tick() => whole(open_namespaces(&context)),
            () = async {
                match due {
                    Some(due) => tokio::time::sleep_until(due.into()).await,
                    None => std::future::pending().await,
                }
            } => Marked::new(),
        };
        // When the cluster first showed what this round analyzes: the start of its incidents'
        // time to diagnosis.
        let woke = Instant::now();
        tokio::time::sleep(debounce).await;
        absorb(&mut marked, context.caches.dirty.take_now());
        absorb(&mut marked, context.caches.dirty.take_due());
        absorb(&mut marked, whole(std::mem::take(&mut failed_before)));
        let mut failed = BTreeSet::new();
        for (namespace, changed) in marked {
            let started = Instant::now();
            if let Err(error) = pass(&context, &namespace, &changed, woke).await {
                ::metrics::counter!(metrics::RECONCILE_ERRORS, "during" => "detect").increment(1);
                // Retried with the next round (the next change anywhere, or the resync within
                // a minute), not at once, which would hammer an API server in trouble.
                tracing::warn!(namespace = %namespace, %error, "analysis pass failed");
                failed.insert(namespace);
            }
            ::metrics::histogram!(metrics::ANALYSIS_SECONDS)
                .record(started.elapsed().as_secs_f64());
        }
        publish_gauges(&context);
        failed_before = failed;
    }
}

/// Namespaces worth a look without an event: those with open incidents or unready pods.
fn open_namespaces(context: &Context) -> BTreeSet<String> {
    let mut namespaces: BTreeSet<String> = context
        .caches
        .incidents
        .state()
        .iter()
        .filter(|i| {
            i.status
                .as_ref()
                .and_then(|s| s.phase)
                .is_some_and(|p| p != Phase::Resolved)
        })
        .map(|i| i.spec.workload.namespace.clone().unwrap_or_default())
        .collect();
    for pod in context.caches.pods.state() {
        if !pod.ready_or_done() {
            namespaces.insert(kube::ResourceExt::namespace(pod.as_ref()).unwrap_or_default());
        }
    }
    namespaces
}

/// Incidents by phase and category, from the cache.
fn publish_gauges(context: &Context) {
    let mut counts: BTreeMap<(Phase, String), u64> = BTreeMap::new();
    for phase in Phase::ALL {
        for category in aegis_core::Category::ALL {
            counts.insert((phase, category.id().to_owned()), 0);
        }
    }
    for incident in context.caches.incidents.state() {
        if let Some(phase) = incident.status.as_ref().and_then(|s| s.phase) {
            *counts
                .entry((phase, incident.spec.category.id().to_owned()))
                .or_default() += 1;
        }
    }
    for ((phase, category), count) in counts {
        ::metrics::gauge!(metrics::INCIDENTS, "phase" => phase.as_str(), "category" => category)
            .set(count as f64);
    }
    for (kind, size) in context.caches.sizes() {
        ::metrics::gauge!(metrics::CACHED_OBJECTS, "kind" => kind).set(size as f64);
    }
}

/// Whether `namespace` is a shadow: labelled `aegis.io/shadow=true`, or named as shadows are.
fn is_shadow(context: &Context, namespace: &str) -> bool {
    namespace.starts_with("aegis-shadow-")
        || context.caches.namespaces.state().iter().any(|n| {
            n.metadata.name.as_deref() == Some(namespace)
                && n.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("aegis.io/shadow"))
                    .is_some_and(|v| v == "true")
        })
}

/// Whether anything in `namespace` could give or clear an incident: the namespace selector
/// chooses it, an object in it is annotated `aegis.io/monitor`, a K8sGPT Result is about it, or
/// an incident there is open. Other namespaces cost no analysis.
fn worth_analyzing(context: &Context, namespace: &str) -> bool {
    let caches = &context.caches;
    let selected = context.namespace_selector.as_ref().is_some_and(|selector| {
        caches.namespaces.state().iter().any(|n| {
            n.metadata.name.as_deref() == Some(namespace)
                && selector.matches(n.metadata.labels.as_ref())
        })
    });
    let here = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        meta.namespace.as_deref().unwrap_or(CLUSTER) == namespace
    };
    let annotated = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        here(meta) && monitored(meta)
    };
    selected
        || !caches.results_in(namespace).is_empty()
        || caches.incidents.state().iter().any(|i| {
            i.spec.workload.namespace.as_deref().unwrap_or(CLUSTER) == namespace
                && i.status
                    .as_ref()
                    .and_then(|s| s.phase)
                    .is_some_and(|p| p != Phase::Resolved)
        })
        || caches
            .pods
            .state()
            .iter()
            .any(|o| annotated(kube::Resource::meta(o.as_ref())))
        || caches
            .deployments
            .state()
            .iter()
            .any(|o| annotated(&o.metadata))
        || caches
            .stateful_sets
            .state()
            .iter()
            .any(|o| annotated(&o.metadata))
        || caches
            .daemon_sets
            .state()
            .iter()
            .any(|o| annotated(&o.metadata))
        || caches.jobs.state().iter().any(|o| annotated(&o.metadata))
        || caches
            .services
            .state()
            .iter()
            .any(|o| annotated(&o.metadata))
        || (namespace == CLUSTER && caches.nodes.state().iter().any(|o| annotated(&o.metadata)))
}

/// Whether an object asks to be watched (`aegis.io/monitor: "true"`).
fn monitored(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(MONITOR_ANNOTATION))
        .is_some_and(|v| v == "true")
}

/// Whether the operator watches `incident`'s workload.
fn watched(incident: &Incident, state: &ClusterState, selector: Option<&LabelSelector>) -> bool {
    let annotated = |r: &ResourceRef| {
        state
            .meta(r.kind, r.namespace_str(), &r.name)
            .is_some_and(monitored)
    };
    if annotated(&incident.workload)
        || annotated(&incident.resource)
        || incident.findings.iter().any(|f| annotated(&f.resource))
    {
        return true;
    }
    let Some(selector) = selector else {
        return false;
    };
    incident
        .workload
        .namespace
        .as_deref()
        .is_some_and(|namespace| {
            state
                .meta(aegis_core::ResourceKind::Namespace, "", namespace)
                .is_some_and(|m| selector.matches(m.labels.as_ref()))
        })
}

/// One pass over one namespace ([`CLUSTER`]: cluster-scoped workloads): all of it, or only the
/// workloads what changed concerns ([`aegis_agent::change_scope`]), whose incidents alone are
/// then recorded and resolved. The analysis reads the whole namespace either way. `woke` is
/// when the detector first heard of what this round analyzes: a new incident's time to
/// diagnosis counts from it.
pub(crate) async fn pass(
    context: &Context,
    namespace: &str,
    changed: &Changed,
    woke: Instant,
) -> Result<()> {
    let cluster = namespace == CLUSTER;
    if is_shadow(context, namespace) {
        // Shadows are AEGIS's own experiments: their failures are the evidence of a
        // verification, not incidents.
        return Ok(());
    }
    if !worth_analyzing(context, namespace) {
        return Ok(());
    }
    let mut state = context.caches.state_of(namespace);
    let scope = match changed {
        Changed::Parts(parts) if !cluster => {
            aegis_agent::change_scope(&state, &changed_objects(context, namespace, parts))
        }
        _ => None,
    };
    let concerned = |workload: &ResourceRef| {
        scope
            .as_ref()
            .is_none_or(|scope| scope.workloads.contains(workload))
    };
    if !cluster {
        context
            .live
            .read_failing_logs_of(&mut state, |pod| {
                scope.as_ref().is_none_or(|s| s.has_pod(pod))
            })
            .await;
    }
    let results = context.caches.results_in(namespace);
    let mut external = Vec::new();
    let mut reported: BTreeMap<ResourceRef, Vec<String>> = BTreeMap::new();
    for result in &results {
        let name = format!(
            "k8sgpt:{}/{}",
            result.metadata.namespace.as_deref().unwrap_or_default(),
            result.metadata.name.as_deref().unwrap_or_default()
        );
        match result.spec.detections() {
            Ok(detections) => {
                if let Ok(workload) = result.spec.workload() {
                    reported.entry(workload).or_default().push(name);
                }
                external.extend(detections);
            }
            Err(error) => tracing::debug!(result = %name, %error, "K8sGPT Result skipped"),
        }
    }
    let request = AnalyzeRequest {
        external,
        scope: scope.as_ref().map(|s| s.workloads.clone()),
        ..AnalyzeRequest::default()
    };
    let report = context
        .agent
        .analyze(&state, SourceKind::Cluster, &request)
        .map_err(|e| crate::Error::Analysis(e.to_string()))?;
    look_again(context, namespace, &state);
    let mut found = BTreeSet::new();
    let mut due = BTreeMap::new();
    for incident in &report.incidents {
        let here = incident.workload.namespace.as_deref().unwrap_or(CLUSTER) == namespace;
        if !here
            || incident.workload.kind.is_namespaced() == cluster
            || !concerned(&incident.workload)
        {
            continue;
        }
        let sources = reported
            .get(&incident.workload)
            .cloned()
            .unwrap_or_default();
        let own = watched(incident, &state, context.namespace_selector.as_ref());
        if !own && sources.is_empty() {
            continue;
        }
        let mut all = Vec::new();
        if own {
            all.push("aegis".to_owned());
        }
        all.extend(sources);
        found.insert(incident.id.clone());
        let cached = cached(context, incident);
        let status = cached.as_ref().and_then(|i| i.status.as_ref());
        // A production change under way keeps the record as it is (see `record`): asking now
        // would be asking again on every pass until it ends.
        let changing = || status.is_some_and(|s| s.changes.iter().any(|c| c.status.in_progress()));
        if context.consultant.is_some() && !changing() && opinion_due(incident, status) {
            due.insert(incident.id.clone(), (about(incident), all.clone()));
        }
        let incident = with_opinion(incident, status);
        let new = cached.is_none();
        record(context, &incident, cached, all, None).await?;
        if new {
            ::metrics::histogram!(metrics::TIME_TO_DIAGNOSIS).record(woke.elapsed().as_secs_f64());
        }
    }
    if let Some(consultant) = context.consultant.as_ref().filter(|_| !due.is_empty()) {
        consult(context, consultant, &state, &request, &due).await?;
    }
    let open: Vec<Arc<IncidentResource>> = context
        .caches
        .incidents
        .state()
        .into_iter()
        .filter(|i| i.spec.workload.namespace.as_deref().unwrap_or(CLUSTER) == namespace)
        .filter(|i| concerned(&i.spec.workload))
        .filter(|i| {
            i.status
                .as_ref()
                .and_then(|s| s.phase)
                .is_some_and(|p| p != Phase::Resolved)
        })
        .filter(|i| !found.contains(i.metadata.name.as_deref().unwrap_or_default()))
        .collect();
    for incident in open {
        resolve(context, &incident).await?;
    }
    Ok(())
}

/// The objects `parts` names in `namespace`, with, for a pod no longer cached, the workloads
/// of the incidents about it (its failure is gone with it, and they must be looked at again).
fn changed_objects(
    context: &Context,
    namespace: &str,
    parts: &BTreeSet<Part>,
) -> BTreeSet<ResourceRef> {
    let mut objects = BTreeSet::new();
    for part in parts {
        let reference = part.reference(namespace);
        if matches!(part, Part::Pod(_))
            && context
                .caches
                .pods
                .get(&kube::runtime::reflector::ObjectRef::new(&reference.name).within(namespace))
                .is_none()
        {
            for incident in context.caches.incidents.state() {
                let about = incident
                    .status
                    .as_ref()
                    .and_then(|s| s.incident.as_ref())
                    .map(|i| &i.resource);
                if about == Some(&reference) {
                    objects.insert(incident.spec.workload.clone());
                }
            }
        }
        objects.insert(reference);
    }
    objects
}

/// Asks to look again at the pods and Deployments of `state` whose failure is not reportable
/// yet only because it is younger than the grace period: once it is, nothing else may change
/// to mark them.
fn look_again(context: &Context, namespace: &str, state: &ClusterState) {
    let grace = context.settings.agent.grace_period_seconds;
    let now = Instant::now();
    let at = |age: u64| now + Duration::from_secs(grace.saturating_sub(age) + 1);
    let touch = |age: u64, part: Part| {
        context
            .caches
            .dirty
            .touch_at(at(age), crate::watch::Touch::part(Some(namespace), part));
    };
    for pod in &state.pods {
        let age = state.age_seconds(&pod.metadata);
        let done = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded");
        if age < grace
            && !done
            && !aegis_core::state::pod_is_ready(pod)
            && let Some(name) = pod.metadata.name.clone()
        {
            touch(age, Part::Pod(name));
        }
    }
    for deployment in &state.deployments {
        let status = deployment.status.clone().unwrap_or_default();
        let wanted = deployment
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1);
        if status.available_replicas.unwrap_or(0) >= wanted {
            continue;
        }
        // Unavailable since the Available condition last moved (or since it was made).
        let since = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Available")
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| t.0)
            .or_else(|| deployment.metadata.creation_timestamp.as_ref().map(|t| t.0));
        let Some(since) = since else { continue };
        let age = u64::try_from(state.now().duration_since(since).as_secs()).unwrap_or(0);
        if age < grace
            && let Some(name) = deployment.metadata.name.clone()
        {
            touch(age, Part::Owner(aegis_core::ResourceKind::Deployment, name));
        }
    }
}

/// Asks the LLM about the diagnoses in `due` (by id: what the rules said, and the sources) and
/// records its opinions.
async fn consult(
    context: &Context,
    consultant: &aegis_llm::Consultant,
    state: &ClusterState,
    request: &AnalyzeRequest,
    due: &BTreeMap<String, (String, Vec<String>)>,
) -> Result<()> {
    let wanted = |incident: &Incident| due.contains_key(&incident.id);
    let (report, _) = context
        .agent
        .consult_where(state, SourceKind::Cluster, request, consultant, &wanted)
        .await
        .map_err(|e| crate::Error::Analysis(e.to_string()))?;
    let now = incidents::now();
    for incident in &report.incidents {
        let (Some((about, sources)), Some(opinion)) =
            (due.get(&incident.id), incident.rca.llm.as_ref())
        else {
            continue;
        };
        ::metrics::counter!(metrics::LLM_OPINIONS, "verdict" => opinion.verdict.as_str())
            .increment(1);
        tracing::info!(incident = %incident.id, workload = %incident.workload, verdict = opinion.verdict.as_str(), "the LLM's opinion");
        let consulted = aegis_core::crd::Consulted {
            about: about.clone(),
            verdict: opinion.verdict,
            at: now.clone(),
        };
        // Looked up again: the rules' record of it was written earlier in this pass.
        let cached = cached(context, incident);
        record(context, incident, cached, sources.clone(), Some(consulted)).await?;
    }
    Ok(())
}

/// What the rules diagnosed, as the LLM is asked about it: `<category>: <summary>`.
fn about(incident: &Incident) -> String {
    format!("{}: {}", incident.rca.category.id(), incident.rca.summary)
}

/// Whether the LLM is to be asked about `incident`: never asked about this diagnosis, or
/// its call failed long enough ago.
fn opinion_due(incident: &Incident, status: Option<&aegis_core::crd::IncidentStatus>) -> bool {
    let Some(consulted) = status.and_then(|s| s.consulted.as_ref()) else {
        return true;
    };
    if consulted.about != about(incident) {
        return true;
    }
    consulted.verdict == aegis_core::LlmVerdict::Failed
        && consulted
            .at
            .parse::<k8s_openapi::jiff::Timestamp>()
            .is_ok_and(|at| {
                k8s_openapi::jiff::Timestamp::now()
                    .duration_since(at)
                    .unsigned_abs()
                    >= LLM_RETRY
            })
}

/// The rules' fresh diagnosis with the LLM's opinion on it carried over from the Incident,
/// when the LLM was asked about this same diagnosis: a diagnosis it gave where the rules had
/// none, or its opinion beside the rules' (with what a contradiction did to the confidence
/// and the fix).
fn with_opinion(fresh: &Incident, status: Option<&aegis_core::crd::IncidentStatus>) -> Incident {
    let mut incident = fresh.clone();
    let Some((consulted, stored)) =
        status.and_then(|s| Some((s.consulted.as_ref()?, s.incident.as_ref()?)))
    else {
        return incident;
    };
    if consulted.about != about(fresh) || stored.rca.llm.is_none() {
        return incident;
    }
    if consulted.verdict == aegis_core::LlmVerdict::Adopted {
        incident.rca = stored.rca.clone();
        incident.fix = stored.fix.clone();
        incident.alternative_fixes = stored.alternative_fixes.clone();
        incident.verification.plan = stored.verification.plan.clone();
    } else {
        incident.rca.llm = stored.rca.llm.clone();
        incident.rca.confidence = stored.rca.confidence;
        incident.rca.analysis_steps = stored.rca.analysis_steps.clone();
        incident.rca.decision_rationale = stored.rca.decision_rationale.clone();
        if stored.fix.is_none() {
            incident.fix = None;
            incident.alternative_fixes.clear();
        }
    }
    incident
}

/// The cached Incident of `incident`.
fn cached(context: &Context, incident: &Incident) -> Option<Arc<IncidentResource>> {
    let namespace = context.namespace_of(&incident.workload);
    context.caches.incidents.state().into_iter().find(|i| {
        i.metadata.name.as_deref() == Some(incident.id.as_str())
            && i.metadata.namespace.as_deref() == Some(namespace.as_str())
    })
}

/// Creates or moves on the Incident of `incident` (`cached`: its Incident in the cache, if
/// any); `consulted` records an LLM consultation.
async fn record(
    context: &Context,
    incident: &Incident,
    cached: Option<Arc<IncidentResource>>,
    sources: Vec<String>,
    consulted: Option<aegis_core::crd::Consulted>,
) -> Result<()> {
    let namespace = context.namespace_of(&incident.workload);
    let api: Api<IncidentResource> = Api::namespaced(context.client.clone(), &namespace);
    let now = incidents::now();
    let update = |status: &mut aegis_core::crd::IncidentStatus| {
        let next = match incidents::stored(status) {
            // A production change under way decides the incident's next phase itself; the
            // analysis waits for it.
            Some(previous) if previous.change_in_progress().is_some() => return,
            Some(previous) => {
                let incident = keep_verified_choice(
                    incident,
                    previous.incident.fix.as_ref(),
                    previous.fix_hash.as_deref(),
                );
                aegis_agent::store::seen_again(previous, &incident, SourceKind::Cluster, &now)
            }
            None => aegis_agent::store::first_seen(incident, SourceKind::Cluster, &now),
        };
        incidents::write_back(status, next);
        status.sources = sources.clone();
        status.resolved_at = None;
        if let Some(consulted) = &consulted {
            status.consulted = Some(consulted.clone());
        }
    };
    // Nothing new against the cache: no request at all.
    if let Some(cached) = &cached {
        let before = cached.status.clone().unwrap_or_default();
        let mut after = before.clone();
        update(&mut after);
        if after == before {
            return Ok(());
        }
    }
    if cached.is_none() {
        incidents::create(
            &api,
            &incident.id,
            IncidentSpec {
                workload: incident.workload.clone(),
                category: incident.rca.category,
                approval: None,
                rejection: None,
                rollback: None,
            },
        )
        .await?;
    }
    incidents::update_status(&api, &incident.id, |_, status| update(status)).await?;
    Ok(())
}

/// The fresh diagnosis, with the fix the incident already has kept in front when the fresh
/// one is the same decision: the fix a shadow chose among the candidates (the next analysis
/// proposes the first candidate again), or a fix of the same shape whose values moved with
/// the cluster (a request sized to the roomiest node changes as pods come and go). Otherwise
/// each pass would void the approval and verify again, and never settle.
fn keep_verified_choice(
    incident: &Incident,
    previous: Option<&aegis_core::Fix>,
    chosen: Option<&str>,
) -> Incident {
    let mut incident = incident.clone();
    let (Some(previous), Some(chosen)) = (previous, chosen) else {
        return incident;
    };
    if incident.fix.as_ref().map(aegis_shadow::fix_hash).as_deref() == Some(chosen) {
        return incident;
    }
    if let Some(position) = incident
        .alternative_fixes
        .iter()
        .position(|f| aegis_shadow::fix_hash(f) == chosen)
    {
        let adopted = incident.alternative_fixes.remove(position);
        if let Some(first) = incident.fix.replace(adopted) {
            incident.alternative_fixes.insert(0, first);
        }
        return incident;
    }
    if incident
        .fix
        .as_ref()
        .is_some_and(|fresh| same_shape(fresh, previous))
    {
        incident.fix = Some(previous.clone());
    }
    incident
}

/// Whether two fixes change the same fields of the same object the same way (their values
/// may differ).
fn same_shape(a: &aegis_core::Fix, b: &aegis_core::Fix) -> bool {
    a.target == b.target
        && a.patch_type == b.patch_type
        && leaf_paths(&a.patch) == leaf_paths(&b.patch)
}

/// The paths of a patch's leaves; list items with a `name` are keyed by it, as Kubernetes
/// merges them.
fn leaf_paths(value: &serde_json::Value) -> BTreeSet<String> {
    fn walk(value: &serde_json::Value, path: &str, out: &mut BTreeSet<String>) {
        match value {
            serde_json::Value::Object(map) if !map.is_empty() => {
                for (key, child) in map {
                    walk(child, &format!("{path}.{key}"), out);
                }
            }
            serde_json::Value::Array(items) if !items.is_empty() => {
                for (index, item) in items.iter().enumerate() {
                    let key = item
                        .get("name")
                        .and_then(serde_json::Value::as_str)
                        .map_or_else(|| index.to_string(), str::to_owned);
                    walk(item, &format!("{path}[{key}]"), out);
                }
            }
            _ => {
                out.insert(path.to_owned());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(value, "", &mut out);
    out
}

/// Moves an incident whose failure is no longer seen to `resolved`.
async fn resolve(context: &Context, incident: &IncidentResource) -> Result<()> {
    let Some(name) = incident.metadata.name.as_deref() else {
        return Ok(());
    };
    let namespace = incident
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| context.options.namespace.clone());
    let api: Api<IncidentResource> = Api::namespaced(context.client.clone(), &namespace);
    let now = incidents::now();
    incidents::update_status(&api, name, |_, status| {
        let Some(mut stored) = incidents::stored(status) else {
            return;
        };
        // A shadow or a production change under way ends on its own evidence first.
        if stored
            .lifecycle
            .advance(
                Action::Resolve,
                OPERATOR,
                &now,
                "the failure is no longer seen",
            )
            .is_ok()
        {
            incidents::write_back(status, stored);
            status.resolved_at = Some(now.clone());
        }
    })
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use aegis_core::{Fix, PatchType, PolicyDecision, ResourceKind, ResourceRef, Risk};
    use serde_json::{Value, json};

    use super::*;

    fn fix(summary: &str, patch: Value) -> Fix {
        Fix {
            summary: summary.to_owned(),
            target: ResourceRef::namespaced(ResourceKind::Deployment, "demo", "ml-trainer"),
            patch_type: PatchType::StrategicMerge,
            patch,
            inverse_patch: json!({}),
            risk: Risk::Low,
            policy: PolicyDecision {
                allowed: true,
                violations: Vec::new(),
            },
            requires_approval: true,
            rollback: None,
        }
    }

    fn memory(request: &str) -> Value {
        json!({"spec": {"template": {"spec": {"containers": [
            {"name": "trainer", "resources": {"requests": {"memory": request}}}]}}}})
    }

    fn incident(first: Fix, alternatives: Vec<Fix>) -> Incident {
        let mut incident: Incident = serde_json::from_value(json!({
            "id": "inc-1", "resource": {"kind": "Pod", "namespace": "demo", "name": "p"},
            "workload": {"kind": "Deployment", "namespace": "demo", "name": "ml-trainer"},
            "findings": [], "fix": null,
            "rca": {"category": "insufficient-resources", "summary": "s", "root_cause": "r",
                    "confidence": 0.9, "evidence": [], "analysis_steps": [],
                    "decision_rationale": "", "backend": "rules", "llm": null},
            "verification": {"plan": null, "result": {"verdict": "skipped", "reason": "x"}}
        }))
        .expect("an incident");
        incident.fix = Some(first);
        incident.alternative_fixes = alternatives;
        incident
    }

    #[test]
    fn a_fix_whose_values_moved_with_the_cluster_keeps_the_verified_one() {
        let verified = fix("6336Mi", memory("6336Mi"));
        let fresh = incident(fix("6400Mi", memory("6400Mi")), Vec::new());
        let hash = aegis_shadow::fix_hash(&verified);
        let kept = keep_verified_choice(&fresh, Some(&verified), Some(&hash));
        assert_eq!(
            kept.fix.as_ref().map(|f| f.summary.as_str()),
            Some("6336Mi")
        );

        // A fix that changes other fields is a new decision.
        let other = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "trainer", "resources": {"limits": {"memory": "8Gi"}}}]}}}});
        let fresh = incident(fix("limit", other), Vec::new());
        let kept = keep_verified_choice(&fresh, Some(&verified), Some(&hash));
        assert_eq!(kept.fix.as_ref().map(|f| f.summary.as_str()), Some("limit"));
    }

    #[test]
    fn the_candidate_a_shadow_chose_stays_in_front_of_the_first_one() {
        let first = fix("first", json!({"spec": {"replicas": 1}}));
        let chosen = fix("chosen", memory("4Gi"));
        let fresh = incident(first, vec![chosen.clone()]);
        let hash = aegis_shadow::fix_hash(&chosen);
        let kept = keep_verified_choice(&fresh, Some(&chosen), Some(&hash));
        assert_eq!(
            kept.fix.as_ref().map(|f| f.summary.as_str()),
            Some("chosen")
        );
        assert_eq!(kept.alternative_fixes[0].summary, "first");
    }

    fn opinion(verdict: aegis_core::LlmVerdict) -> aegis_core::LlmOpinion {
        aegis_core::LlmOpinion {
            backend: "ollama:m".to_owned(),
            verdict,
            category: None,
            summary: None,
            confidence: None,
            evidence: Vec::new(),
            reasons: Vec::new(),
            prompt_tokens: 10,
            completion_tokens: 5,
            latency_ms: 100,
            prompt_hash: "h".to_owned(),
        }
    }

    /// An Incident's status holding `stored`, consulted about `about` with `verdict` at `at`.
    fn consulted(
        stored: &Incident,
        about: &str,
        verdict: aegis_core::LlmVerdict,
        at: &str,
    ) -> aegis_core::crd::IncidentStatus {
        aegis_core::crd::IncidentStatus {
            incident: Some(stored.clone()),
            consulted: Some(aegis_core::crd::Consulted {
                about: about.to_owned(),
                verdict,
                at: at.to_owned(),
            }),
            ..aegis_core::crd::IncidentStatus::default()
        }
    }

    #[test]
    fn the_llm_is_asked_once_per_diagnosis_and_again_only_after_a_change_or_an_old_failure() {
        use aegis_core::LlmVerdict::{Agreed, Failed};
        let fresh = incident(fix("first", json!({"spec": {"replicas": 1}})), Vec::new());
        let now = incidents::now();
        let long_ago = "2026-01-01T00:00:00Z";
        let same = about(&fresh);
        assert_eq!(same, "insufficient-resources: s");
        let cases = [
            ("never asked", None, true),
            (
                "asked about it",
                Some(consulted(&fresh, &same, Agreed, &now)),
                false,
            ),
            (
                "asked long ago about it",
                Some(consulted(&fresh, &same, Agreed, long_ago)),
                false,
            ),
            (
                "asked about another diagnosis",
                Some(consulted(&fresh, "oom-killed: x", Agreed, &now)),
                true,
            ),
            (
                "the call just failed",
                Some(consulted(&fresh, &same, Failed, &now)),
                false,
            ),
            (
                "the call failed long ago",
                Some(consulted(&fresh, &same, Failed, long_ago)),
                true,
            ),
        ];
        for (case, status, due) in cases {
            assert_eq!(opinion_due(&fresh, status.as_ref()), due, "{case}");
        }
    }

    #[test]
    fn an_opinion_on_the_same_diagnosis_is_carried_into_the_next_pass_and_dropped_on_another() {
        use aegis_core::LlmVerdict::{Adopted, Agreed, Contradicted};
        let fresh = incident(fix("first", json!({"spec": {"replicas": 1}})), Vec::new());
        let now = incidents::now();
        let same = about(&fresh);

        // Agreed: the opinion and what it added to the analysis stay; the rules' fix stays.
        let mut agreed = fresh.clone();
        agreed.rca.llm = Some(opinion(Agreed));
        agreed
            .rca
            .analysis_steps
            .push("the model agrees".to_owned());
        let carried = with_opinion(&fresh, Some(&consulted(&agreed, &same, Agreed, &now)));
        assert_eq!(carried.rca.llm, agreed.rca.llm);
        assert_eq!(carried.rca.analysis_steps, ["the model agrees"]);
        assert_eq!(carried.fix, fresh.fix);

        // Contradicted below the threshold: the fix it withheld stays withheld.
        let mut contradicted = fresh.clone();
        contradicted.rca.llm = Some(opinion(Contradicted));
        contradicted.rca.confidence = 0.5;
        contradicted.fix = None;
        let carried = with_opinion(
            &fresh,
            Some(&consulted(&contradicted, &same, Contradicted, &now)),
        );
        assert!((carried.rca.confidence - 0.5).abs() < 1e-9);
        assert!(carried.fix.is_none());

        // Adopted where the rules had nothing: the model's diagnosis stands, under the rules' id.
        let mut unknown = fresh.clone();
        unknown.rca.category = aegis_core::Category::Unknown;
        unknown.rca.summary = "no rule matched".to_owned();
        unknown.fix = None;
        let mut adopted = unknown.clone();
        adopted.rca.category = aegis_core::Category::OomKilled;
        adopted.rca.summary = "the model's diagnosis".to_owned();
        adopted.rca.llm = Some(opinion(Adopted));
        let carried = with_opinion(
            &unknown,
            Some(&consulted(&adopted, &about(&unknown), Adopted, &now)),
        );
        assert_eq!(carried.id, unknown.id);
        assert_eq!(carried.rca.category, aegis_core::Category::OomKilled);
        assert_eq!(carried.rca.summary, "the model's diagnosis");

        // The rules now say something else: the old opinion is not about it.
        let mut changed = fresh.clone();
        changed.rca.summary = "another cause".to_owned();
        let carried = with_opinion(&changed, Some(&consulted(&agreed, &same, Agreed, &now)));
        assert!(carried.rca.llm.is_none());
        assert_eq!(carried, changed);
    }

    #[test]
    fn leaf_paths_key_list_items_by_name() {
        let paths = leaf_paths(&memory("1Gi"));
        assert_eq!(
            paths.into_iter().collect::<Vec<_>>(),
            [
                ".spec.template.spec.containers[trainer].name",
                ".spec.template.spec.containers[trainer].resources.requests.memory"
            ]
        );
    }
}
