//! Classification: which taxonomy category one detection belongs to, how sure the rules are,
//! and which of its evidence proves it.

use std::sync::LazyLock;

use aegis_core::{Category, Evidence, EvidenceSource, ResourceKind};
use aegis_k8sgpt::Detection;
use k8s_openapi::api::core::v1::Pod;
use regex::Regex;

/// What a fix needs to know about the cause.
#[derive(Debug, Clone, PartialEq)]
pub enum Cause {
    MissingEnv {
        container: String,
        variable: String,
    },
    ConfigRef {
        container: Option<String>,
        message: String,
    },
    Image {
        container: String,
    },
    PullAuth {
        container: String,
    },
    Oom {
        container: String,
    },
    Probe {
        container: String,
        probe: ProbeKind,
        failure: String,
    },
    Unschedulable {
        message: String,
    },
    ServiceSelector,
    ServicePort,
    IngressBackend {
        service: String,
    },
    Other,
}

/// Which probe failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

impl ProbeKind {
    pub fn field(self) -> &'static str {
        match self {
            Self::Liveness => "livenessProbe",
            Self::Readiness => "readinessProbe",
            Self::Startup => "startupProbe",
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Self::Liveness => "liveness",
            Self::Readiness => "readiness",
            Self::Startup => "startup",
        }
    }
}

/// The classification of one detection.
#[derive(Debug, Clone)]
pub struct Signal {
    pub category: Category,
    pub confidence: f64,
    /// Explained by any more specific category of the same workload (a stuck rollout, a Job
    /// that failed, a Service without ready endpoints).
    pub generic: bool,
    /// The evidence that proves the category, cited by the analysis.
    pub cited: Vec<Evidence>,
    /// What the rules looked at, in order.
    pub steps: Vec<String>,
    /// One sentence.
    pub summary: String,
    /// A paragraph.
    pub root_cause: String,
    pub cause: Cause,
}

static MISSING_ENV: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    [
        r#"(?i:environment variable|env var|env variable)\s+["'`$]?([A-Z][A-Z0-9_]*)["'`]?\s+(?i:is\s+)?(?i:not set|unset|missing|required|undefined|empty|must be set|not defined)"#,
        r"(?i:missing|required)\s+(?i:required\s+)?(?i:environment variables?|env vars?|env variables?)[:\s]+[\x22'`]?([A-Z][A-Z0-9_]*)",
        r"\b([A-Z][A-Z0-9]*_[A-Z0-9_]+)\s+(?:is\s+)?(?:not set|must be set|is required|undefined|missing|not defined)\b",
        r"KeyError: '([A-Z][A-Z0-9_]*)'",
        r"required key ([A-Z][A-Z0-9_]*) missing value",
    ]
    .iter()
    .map(|p| Regex::new(p).unwrap_or_else(|e| panic!("built-in pattern {p} is valid: {e}")))
    .collect()
});

fn texts(
    detection: &Detection,
    source: EvidenceSource,
) -> impl DoubleEndedIterator<Item = &Evidence> {
    detection
        .evidence
        .iter()
        .filter(move |e| e.source == source)
}

fn find<'a>(
    detection: &'a Detection,
    source: EvidenceSource,
    needles: &[&str],
) -> Vec<&'a Evidence> {
    texts(detection, source)
        .filter(|e| needles.iter().any(|n| e.excerpt.contains(n)))
        .collect()
}

fn status_field<'a>(detection: &'a Detection, field: &str) -> Option<&'a Evidence> {
    texts(detection, EvidenceSource::Status).find(|e| e.reference.ends_with(field))
}

/// The first log line naming a missing environment variable, with the variable.
fn missing_variable(detection: &Detection) -> Option<(String, &Evidence)> {
    texts(detection, EvidenceSource::Log).find_map(|e| {
        MISSING_ENV
            .iter()
            .find_map(|re| re.captures(&e.excerpt))
            .and_then(|c| c.get(1))
            .map(|m| (m.as_str().to_owned(), e))
    })
}

fn container_env_names(pod: Option<&Pod>, container: &str) -> Vec<String> {
    pod.and_then(|p| p.spec.as_ref())
        .and_then(|s| s.containers.iter().find(|c| c.name == container))
        .map(|c| c.env.iter().flatten().map(|e| e.name.clone()).collect())
        .unwrap_or_default()
}

fn owned(evidence: &[&Evidence]) -> Vec<Evidence> {
    evidence.iter().map(|e| (*e).clone()).collect()
}

/// Classifies one detection. `pod` is the pod it is about, when it is about one.
pub fn classify(detection: &Detection, pod: Option<&Pod>) -> Signal {
    let finding = &detection.finding;
    let reason = finding.reason.as_str();
    let resource = &finding.resource;
    let container = detection.container.clone().unwrap_or_default();
    let first_step = format!(
        "{} analyzer: {} — {}",
        finding.analyzer, finding.reason, finding.message
    );
    let mut signal = Signal {
        category: Category::Unknown,
        confidence: 0.3,
        generic: false,
        cited: Vec::new(),
        steps: vec![first_step],
        summary: finding.message.clone(),
        root_cause: format!("{}; no rule explains it further.", finding.message),
        cause: Cause::Other,
    };
    let lead_status: Vec<Evidence> = texts(detection, EvidenceSource::Status)
        .take(3)
        .cloned()
        .collect();
    if classify_other_analyzers(detection, &mut signal) {
        if signal.cited.is_empty() {
            signal.cited = detection.evidence.iter().take(4).cloned().collect();
        }
        return signal;
    }
    match (resource.kind, reason) {
        (ResourceKind::Pod, "CreateContainerConfigError") => {
            let message = status_field(detection, "state.waiting.message")
                .map(|e| e.excerpt.clone())
                .unwrap_or_default();
            signal.category = Category::MissingConfigRef;
            signal.confidence = 0.95;
            signal.cited = lead_status;
            signal
                .cited
                .extend(owned(&find(detection, EvidenceSource::Event, &["Error:"])));
            signal.steps.push(format!(
                "container {container} waits in CreateContainerConfigError: {message}"
            ));
            signal.summary = format!("Container {container} cannot start: {message}.");
            signal.root_cause = format!(
                "The kubelet cannot build the environment of container {container} because a referenced ConfigMap or Secret (or one of its keys) does not exist: {message}. The container is never created, so no replica becomes ready."
            );
            signal.cause = Cause::ConfigRef {
                container: Some(container),
                message,
            };
        }
        (ResourceKind::Pod, "ImagePullBackOff" | "ErrImagePull") => {
            let pull_errors = find(detection, EvidenceSource::Event, &["Failed to pull image"]);
            let waiting = status_field(detection, "state.waiting.message");
            let text: String = pull_errors
                .iter()
                .map(|e| e.excerpt.as_str())
                .chain(waiting.map(|e| e.excerpt.as_str()))
                .collect::<Vec<_>>()
                .join("\n");
            let auth = [
                "unauthorized",
                "authorization failed",
                "access denied",
                "denied:",
                "no basic auth",
                "authentication required",
                "403 Forbidden",
            ]
            .iter()
            .any(|n| text.contains(n));
            let not_found = ["not found", "manifest unknown", "NotFound", "name unknown"]
                .iter()
                .any(|n| text.contains(n));
            signal.cited = lead_status;
            signal.cited.extend(owned(&pull_errors));
            if not_found && !auth {
                signal.category = Category::ImageNotFound;
                signal.confidence = 0.92;
                signal.steps.push(
                    "the pull error says the image reference does not exist in the registry"
                        .to_owned(),
                );
                signal.summary = format!(
                    "Image {} of container {container} does not exist.",
                    image_of(pod, &container)
                );
                signal.root_cause = format!(
                    "The registry answers that {} does not exist (tag or manifest not found), so the kubelet cannot pull it and backs off. The container never starts.",
                    image_of(pod, &container)
                );
                signal.cause = Cause::Image { container };
            } else if auth {
                signal.category = Category::ImagePullAuth;
                signal.confidence = 0.85;
                signal.steps.push(
                    "the pull error says the registry refused the credentials (or there were none)"
                        .to_owned(),
                );
                signal.summary = format!(
                    "The registry refuses to serve image {} without credentials.",
                    image_of(pod, &container)
                );
                signal.root_cause = format!(
                    "Pulling {} fails with an authorization error: the pod has no imagePullSecret the registry accepts.",
                    image_of(pod, &container)
                );
                signal.cause = Cause::PullAuth { container };
            } else {
                signal.category = Category::ImageNotFound;
                signal.confidence = 0.5;
                signal.steps.push(
                    "the pull error names neither a missing image nor an authorization failure"
                        .to_owned(),
                );
                signal.summary = format!(
                    "Image {} cannot be pulled for an unclear reason.",
                    image_of(pod, &container)
                );
                signal.root_cause = "The kubelet cannot pull the image, but the error does not say why (network, registry outage, rate limit?).".to_owned();
                signal.cause = Cause::Image { container };
            }
        }
        (ResourceKind::Pod, "InvalidImageName") => {
            signal.category = Category::InvalidImageName;
            signal.confidence = 0.95;
            signal.cited = lead_status;
            signal.cited.extend(owned(&find(
                detection,
                EvidenceSource::Event,
                &["invalid reference format", "InvalidImageName"],
            )));
            signal
                .steps
                .push("the image reference cannot be parsed".to_owned());
            signal.summary =
                format!("Container {container} names an image that is not a valid reference.");
            signal.root_cause = format!(
                "The image reference {} of container {container} is not valid, so the kubelet cannot even try to pull it.",
                image_of(pod, &container)
            );
            signal.cause = Cause::Image { container };
        }
        (
            ResourceKind::Pod,
            "CrashLoopBackOff"
            | "Restarting"
            | "Terminated"
            | "Unhealthy"
            | "OOMKilled"
            | "RunContainerError"
            | "CreateContainerError",
        ) => {
            classify_crash(detection, pod, &container, &mut signal);
        }
        (ResourceKind::Pod, "NotReady") => {
            let failures = find(
                detection,
                EvidenceSource::Event,
                &["Readiness probe failed"],
            );
            if failures.is_empty() {
                signal.category = Category::Unknown;
                signal.confidence = 0.4;
                signal
                    .steps
                    .push("no readiness probe failures were recorded".to_owned());
            } else {
                let failure = probe_failure(failures[0], "Readiness probe failed: ");
                signal.category = Category::ReadinessProbeFailure;
                signal.confidence = 0.9;
                signal.cited = lead_status;
                signal.cited.extend(owned(&failures));
                signal.steps.push(format!(
                    "the readiness probe of container {container} keeps failing: {failure}"
                ));
                signal.summary = format!(
                    "The readiness probe of container {container} fails, so the pod never receives traffic."
                );
                signal.root_cause = format!(
                    "Container {container} runs, but its readiness probe fails ({failure}). The pod stays NotReady and is kept out of every Service's endpoints."
                );
                signal.cause = Cause::Probe {
                    container,
                    probe: ProbeKind::Readiness,
                    failure,
                };
            }
        }
        (ResourceKind::Pod, "Unschedulable") => {
            let message = status_field(detection, "message")
                .map(|e| e.excerpt.clone())
                .unwrap_or_default();
            signal.cited = lead_status;
            signal.cited.extend(owned(&find(
                detection,
                EvidenceSource::Event,
                &["FailedScheduling"],
            )));
            signal
                .steps
                .push(format!("the scheduler explains: {message}"));
            if message.contains("Insufficient cpu")
                || message.contains("Insufficient memory")
                || message.contains("Insufficient ")
            {
                signal.category = Category::InsufficientResources;
                signal.confidence = 0.92;
                signal.summary = "No node has room for the pod's resource requests.".to_owned();
                signal.root_cause = format!(
                    "The scheduler finds no node with enough free capacity for the pod's requests: {message}"
                );
            } else if message.contains("PersistentVolumeClaim")
                || message.contains("persistentvolumeclaim")
            {
                signal.category = Category::PvcPending;
                signal.confidence = 0.9;
                signal.summary =
                    "The pod waits for a persistent volume claim that is not bound.".to_owned();
                signal.root_cause =
                    format!("The pod cannot be scheduled until its claim is bound: {message}");
            } else if [
                "node affinity",
                "selector",
                "taint",
                "anti-affinity",
                "affinity",
            ]
            .iter()
            .any(|n| message.contains(n))
            {
                signal.category = Category::UnschedulableConstraints;
                signal.confidence = 0.88;
                signal.summary = "No node satisfies the pod's placement constraints.".to_owned();
                signal.root_cause = format!(
                    "Node selectors, affinity rules or taints exclude every node: {message}"
                );
            } else {
                signal.category = Category::Unknown;
                signal.confidence = 0.4;
            }
            signal.cause = Cause::Unschedulable { message };
        }
        (ResourceKind::Pod, "FailedMount") => {
            let failures = find(detection, EvidenceSource::Event, &["FailedMount"]);
            signal.category = Category::VolumeMountFailure;
            signal.confidence = 0.9;
            signal.cited = owned(&failures);
            signal
                .steps
                .push("the kubelet cannot mount a volume of the pod".to_owned());
            signal.summary = "A volume of the pod cannot be mounted.".to_owned();
            let message = failures
                .first()
                .map(|e| e.excerpt.clone())
                .unwrap_or_default();
            signal.root_cause = format!(
                "The kubelet reports: {message}. The containers wait until the volume mounts."
            );
            signal.cause = Cause::ConfigRef {
                container: None,
                message,
            };
        }
        (ResourceKind::Service, "NoEndpoints") => {
            signal.category = Category::ServiceSelectorMismatch;
            signal.confidence = 0.9;
            signal.cited = detection.evidence.clone();
            signal.steps.push(
                "no pod in the namespace carries every label of the Service's selector".to_owned(),
            );
            signal.summary = format!(
                "Service {} selects no pod, so it has no endpoints.",
                resource.name
            );
            signal.root_cause = format!(
                "{}. Traffic sent to the Service goes nowhere.",
                finding.message
            );
            signal.cause = Cause::ServiceSelector;
        }
        (ResourceKind::Service, "TargetPortMismatch") => {
            signal.category = Category::ServicePortMismatch;
            signal.confidence = 0.85;
            signal.cited = detection.evidence.clone();
            signal.steps.push(
                "the Service's target port is not among the ports the selected containers declare"
                    .to_owned(),
            );
            signal.summary = format!(
                "Service {} forwards to a port its pods do not expose.",
                resource.name
            );
            signal.root_cause = finding.message.clone();
            signal.cause = Cause::ServicePort;
        }
        (ResourceKind::Service, "NoReadyEndpoints") => {
            signal.category = Category::Unknown;
            signal.confidence = 0.5;
            signal.generic = true;
            signal.cited = detection.evidence.clone();
        }
        (ResourceKind::Deployment | ResourceKind::ReplicaSet | ResourceKind::StatefulSet, _) => {
            signal.category = Category::RolloutStuck;
            signal.confidence = 0.6;
            signal.generic = true;
            signal.cited = detection.evidence.clone();
            signal.summary = format!(
                "The rollout of {} {} does not complete.",
                resource.kind, resource.name
            );
            signal.root_cause =
                format!("{}; the pods show no more specific cause.", finding.message);
        }
        (ResourceKind::Job, _) => {
            signal.category = Category::JobFailed;
            signal.confidence = 0.75;
            signal.generic = true;
            signal.cited = detection.evidence.clone();
            signal.summary = format!("Job {} failed.", resource.name);
            signal.root_cause =
                format!("{}; its pods show no more specific cause.", finding.message);
        }
        (ResourceKind::PersistentVolumeClaim, _) => {
            signal.category = Category::PvcPending;
            signal.confidence = 0.85;
            signal.cited = detection.evidence.clone();
            signal.summary = format!("Persistent volume claim {} is not bound.", resource.name);
            signal.root_cause = format!(
                "{}: no volume was provisioned or bound for it.",
                finding.message
            );
        }
        (ResourceKind::Node, _) => {
            signal.category = Category::NodeNotReady;
            signal.confidence = 0.9;
            signal.cited = detection.evidence.clone();
            signal.summary = format!("Node {} is not ready.", resource.name);
            signal.root_cause = format!(
                "{}. Pods on it are not running reliably and new pods avoid it.",
                finding.message
            );
        }
        (ResourceKind::Ingress, _) => {
            signal.category = Category::IngressBackendMissing;
            signal.confidence = 0.88;
            signal.cited = detection.evidence.clone();
            signal.summary = finding.message.clone();
            signal.root_cause = format!("{}; requests routed there fail.", finding.message);
            if reason == "BackendServiceMissing" {
                let service = detection
                    .evidence
                    .first()
                    .map(|e| e.excerpt.clone())
                    .unwrap_or_default();
                signal.cause = Cause::IngressBackend { service };
            }
        }
        _ => {}
    }
    if finding.analyzer == "K8sGPT" && signal.category == Category::Unknown {
        // K8sGPT's own finding, read from its report: a symptom that joins the diagnosis the
        // rules make of the same workload, and an incident of its own only where they make none.
        signal.generic = true;
    }
    if signal.cited.is_empty() {
        signal.cited = detection.evidence.iter().take(4).cloned().collect();
    }
    signal
}

/// The findings of the analyzers beyond pods, workloads, Services, claims, nodes and ingresses
/// (and the kinds of finding those gained with them): DaemonSets, CronJobs, autoscalers,
/// ConfigMap references, storage, security, logs, node pressure, scheduling gates, lost
/// claims. Returns whether it classified the detection.
fn classify_other_analyzers(detection: &Detection, signal: &mut Signal) -> bool {
    let finding = &detection.finding;
    let message = finding.message.clone();
    let mut set = |category: Category, confidence: f64, generic: bool, root_cause: String| {
        signal.category = category;
        signal.confidence = confidence;
        signal.generic = generic;
        signal.cited = detection.evidence.clone();
        let mut chars = message.chars();
        signal.summary = chars.next().map_or_else(String::new, |first| {
            format!("{}{}.", first.to_uppercase(), chars.as_str())
        });
        signal.root_cause = root_cause;
    };
    match (finding.analyzer.as_str(), finding.reason.as_str()) {
        ("DaemonSet", "PullSecretMissing") => set(
            Category::ImagePullAuth,
            0.8,
            false,
            format!(
                "{message}: pods that need it cannot pull their image from a private registry."
            ),
        ),
        ("DaemonSet", _) => set(
            Category::RolloutStuck,
            0.6,
            true,
            format!("{message}; its pods show no more specific cause."),
        ),
        ("CronJob", "InvalidSchedule") => set(
            Category::JobFailed,
            0.9,
            false,
            format!("{message}: the controller cannot compute the next run, so no job starts."),
        ),
        ("CronJob", _) => set(
            Category::JobFailed,
            0.7,
            false,
            format!("{message}. Scheduled runs do not happen."),
        ),
        ("HorizontalPodAutoscaler", "ScaleTargetMissing") => set(
            Category::HpaMisconfigured,
            0.9,
            false,
            format!("{message}: the autoscaler has nothing to scale."),
        ),
        ("HorizontalPodAutoscaler", "MissingRequests") => set(
            Category::HpaMisconfigured,
            0.9,
            false,
            format!(
                "{message}: utilization is a share of the request, so the autoscaler cannot compute it and does not scale."
            ),
        ),
        ("HorizontalPodAutoscaler", _) => set(
            Category::HpaMisconfigured,
            0.8,
            false,
            format!("{message}. The workload stays at its current size whatever its load."),
        ),
        ("ConfigMap", _) => set(
            Category::MissingConfigRef,
            0.85,
            false,
            format!(
                "{message}: a pod that starts now (a restart, a scale-up, the next scheduled run) cannot build its environment or volumes and stays in CreateContainerConfigError or ContainerCreating."
            ),
        ),
        ("Storage", _) => set(
            Category::StorageMisconfigured,
            0.8,
            false,
            format!("{message}. Mark exactly one class as the default."),
        ),
        ("PersistentVolumeClaim", "Lost") => set(
            Category::StorageMisconfigured,
            0.85,
            false,
            format!(
                "{message}: the volume it was bound to is gone, so pods that mount it cannot start; the data must be restored or the claim recreated."
            ),
        ),
        ("ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration", _) => set(
            Category::WebhookUnavailable,
            0.9,
            false,
            format!(
                "{message}. Restore the Service or its pods, or remove the webhook configuration if its owner is gone."
            ),
        ),
        ("PodDisruptionBudget", _) => set(
            Category::PdbMisconfigured,
            0.85,
            false,
            format!("{message}."),
        ),
        ("NetworkPolicy", _) => set(
            Category::NetworkPolicyMisconfigured,
            0.8,
            false,
            format!(
                "{message}; check its podSelector against the labels of the pods it was written for."
            ),
        ),
        ("GatewayClass" | "Gateway" | "HTTPRoute", _) => set(
            Category::GatewayMisconfigured,
            0.85,
            false,
            format!(
                "{message}. Traffic this object should carry through the Gateway API is not routed."
            ),
        ),
        ("CustomResource", _) => set(
            Category::CustomResourceUnhealthy,
            0.7,
            true,
            format!(
                "{message}. Its controller reports it not working; what it manages is not served until the condition clears."
            ),
        ),
        ("Security", _) => set(
            Category::SecurityRisk,
            0.9,
            false,
            format!(
                "{message}. It is not a failure, but a compromise of this workload reaches further than it needs to."
            ),
        ),
        ("Log", _) => set(
            Category::Unknown,
            0.3,
            true,
            format!("{message}; the log alone does not say what failed."),
        ),
        ("Node", "MemoryPressure" | "DiskPressure" | "PIDPressure" | "NetworkUnavailable") => set(
            Category::NodePressure,
            0.85,
            false,
            format!(
                "{message}. The kubelet evicts pods and the scheduler avoids the node until it recovers."
            ),
        ),
        ("Pod", "SchedulingGated") => set(
            Category::UnschedulableConstraints,
            0.8,
            false,
            format!(
                "{message}. The scheduler does not consider a pod until every gate is removed by whatever added it (a job queue such as Kueue, or a controller)."
            ),
        ),
        _ => return false,
    }
    signal.steps.push(format!(
        "{} analyzer's finding {} is classified as {}",
        finding.analyzer, finding.reason, signal.category
    ));
    true
}

fn image_of(pod: Option<&Pod>, container: &str) -> String {
    pod.and_then(|p| p.spec.as_ref())
        .and_then(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
                .find(|c| c.name == container)
        })
        .and_then(|c| c.image.clone())
        .unwrap_or_else(|| "(unknown image)".to_owned())
}

fn probe_failure(event: &Evidence, marker: &str) -> String {
    event
        .excerpt
        .split_once(marker)
        .map_or_else(|| event.excerpt.clone(), |(_, rest)| rest.to_owned())
}

/// Crash-like pod findings: OOM, probe kills, missing variables, missing executables, crashes.
fn classify_crash(detection: &Detection, pod: Option<&Pod>, container: &str, signal: &mut Signal) {
    let status = texts(detection, EvidenceSource::Status)
        .cloned()
        .collect::<Vec<_>>();
    let oom = status
        .iter()
        .find(|e| e.excerpt.contains("reason=OOMKilled"));
    if let Some(oom) = oom {
        signal.category = Category::OomKilled;
        signal.confidence = 0.95;
        signal.cited = vec![oom.clone()];
        signal.cited.extend(
            status
                .iter()
                .filter(|e| e.reference.ends_with("state.waiting.reason"))
                .cloned(),
        );
        signal.steps.push(format!(
            "container {container} last terminated with reason OOMKilled, exit code 137"
        ));
        signal.summary = format!("Container {container} is killed for exceeding its memory limit.");
        signal.root_cause = format!(
            "The kernel OOM-killed container {container}: its working set grows past the memory limit, the container dies with exit code 137 and restarts in a loop."
        );
        signal.cause = Cause::Oom {
            container: container.to_owned(),
        };
        return;
    }
    for (probe, marker) in [
        (ProbeKind::Liveness, "Liveness probe failed: "),
        (ProbeKind::Startup, "Startup probe failed: "),
    ] {
        let failures = find(detection, EvidenceSource::Event, &[marker]);
        if let Some(first) = failures.first() {
            let failure = probe_failure(first, marker);
            let kills = find(detection, EvidenceSource::Event, &["will be restarted"]);
            signal.category = if probe == ProbeKind::Liveness {
                Category::LivenessProbeFailure
            } else {
                Category::StartupProbeFailure
            };
            signal.confidence = if kills.is_empty() { 0.8 } else { 0.92 };
            signal.cited = owned(&failures);
            signal.cited.extend(owned(&kills));
            signal.cited.extend(
                status
                    .iter()
                    .filter(|e| e.reference.ends_with("lastState.terminated"))
                    .cloned(),
            );
            signal.steps.push(format!(
                "the {} probe of container {container} fails: {failure}",
                probe.word()
            ));
            if !kills.is_empty() {
                signal
                    .steps
                    .push("the kubelet kills and restarts the container because of it".to_owned());
            }
            signal.summary = format!(
                "The {} probe of container {container} fails, so the kubelet keeps restarting it.",
                probe.word()
            );
            signal.root_cause = format!(
                "The {} probe of container {container} fails ({failure}); after the failure threshold the kubelet kills the container, which restarts and is killed again.",
                probe.word()
            );
            signal.cause = Cause::Probe {
                container: container.to_owned(),
                probe,
                failure,
            };
            return;
        }
    }
    if let Some((variable, line)) = missing_variable(detection) {
        let defined = container_env_names(pod, container).contains(&variable);
        signal.category = if defined {
            Category::AppCrash
        } else {
            Category::MissingEnvVar
        };
        signal.confidence = if defined { 0.6 } else { 0.95 };
        signal.cited = vec![line.clone()];
        signal.cited.extend(
            status
                .iter()
                .filter(|e| {
                    e.reference.ends_with("state.waiting.reason")
                        || e.reference.ends_with("lastState.terminated")
                })
                .cloned(),
        );
        signal.steps.push(format!(
            "the log of container {container} says {variable} is not set: \"{}\"",
            line.excerpt
        ));
        if defined {
            signal.steps.push(format!(
                "but the container spec defines {variable}; its value may be empty or wrong"
            ));
            signal.summary =
                format!("Container {container} rejects the value of {variable} and exits.");
            signal.root_cause = format!(
                "The application exits at start-up complaining about {variable}, which the spec does define; the value itself is probably wrong."
            );
        } else {
            signal
                .steps
                .push(format!("the container spec does not define {variable}"));
            signal.summary = format!(
                "Container {container} exits at start-up because environment variable {variable} is not set."
            );
            signal.root_cause = format!(
                "The application in container {container} requires {variable} and exits with an error when it is missing. The pod spec does not define it, so every start fails and the container crash-loops."
            );
            signal.cause = Cause::MissingEnv {
                container: container.to_owned(),
                variable,
            };
        }
        return;
    }
    let not_found = texts(detection, EvidenceSource::Status)
        .chain(texts(detection, EvidenceSource::Event))
        .find(|e| {
            [
                "executable file not found",
                "exec format error",
                "no such file or directory",
            ]
            .iter()
            .any(|n| e.excerpt.contains(n))
        })
        .cloned();
    if let Some(evidence) = not_found {
        signal.category = Category::CommandNotFound;
        signal.confidence = 0.9;
        signal.steps.push(format!(
            "the runtime cannot start the command of container {container}: {}",
            evidence.excerpt
        ));
        signal.cited = vec![evidence];
        signal.summary = format!("The command of container {container} cannot be executed.");
        signal.root_cause = "The container runtime cannot find or execute the container's command or entrypoint; the image and the command do not match.".to_owned();
        return;
    }
    let exit = status
        .iter()
        .find(|e| e.reference.ends_with("terminated"))
        .cloned();
    signal.category = Category::AppCrash;
    signal.confidence = 0.5;
    signal.cited = exit.into_iter().collect();
    signal
        .cited
        .extend(texts(detection, EvidenceSource::Log).rev().take(3).cloned());
    signal.steps.push(format!("container {container} exits with an error, and neither its status, events nor logs name a known cause"));
    signal.summary = format!("Container {container} crashes with no recognisable cause.");
    signal.root_cause = format!(
        "Container {container} exits with a non-zero code; its logs show no missing variable, memory kill, probe failure or missing executable. The application itself is failing."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_naming_a_missing_variable_are_recognised() {
        let cases = [
            (
                "FATAL: required environment variable DATABASE_URL is not set",
                Some("DATABASE_URL"),
            ),
            (
                "Error: env var 'REDIS_HOST' is required",
                Some("REDIS_HOST"),
            ),
            (
                "missing required environment variables: API_KEY, API_SECRET",
                Some("API_KEY"),
            ),
            ("KeyError: 'SECRET_KEY'", Some("SECRET_KEY")),
            ("envconfig: required key PORT missing value", Some("PORT")),
            ("panic: STRIPE_TOKEN must be set", Some("STRIPE_TOKEN")),
            ("listening on :8080", None),
            ("the database is not set up yet", None),
        ];
        for (line, expected) in cases {
            let found = MISSING_ENV
                .iter()
                .find_map(|re| re.captures(line))
                .and_then(|c| c.get(1))
                .map(|m| m.as_str().to_owned());
            assert_eq!(found.as_deref(), expected, "{line}");
        }
    }
}
