//! How one pod behaves in the simulated world: scheduling, image pulls, configuration
//! references, start-up, memory, probes — and the status, events and logs that follow.
//!
//! Nothing here knows the demo scenarios; every outcome follows from the pod spec, the objects
//! of its namespace and the [`World`] model.

use std::collections::BTreeMap;

use aegis_core::image::ImageRef;
use aegis_core::quantity;
use k8s_openapi::api::core::v1::{ConfigMap, Container, PersistentVolumeClaim, Pod, Probe, Secret};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::world::{AppModel, World};

/// An event the simulator records, aggregated like the kubelet does.
#[derive(Debug, Clone)]
pub struct SimEvent {
    pub warning: bool,
    pub reason: String,
    pub message: String,
    pub count: u32,
    pub first: Timestamp,
    pub last: Timestamp,
    pub component: &'static str,
}

/// A container log the simulator produced.
#[derive(Debug, Clone)]
pub struct SimLog {
    pub container: String,
    pub previous: bool,
    pub text: String,
}

/// What became of one pod.
#[derive(Debug, Clone)]
pub struct PodOutcome {
    pub status: Value,
    pub node: Option<String>,
    pub ready: bool,
    /// The pod ran to completion, or will keep failing for good (for Jobs).
    pub crashed: bool,
    pub events: Vec<SimEvent>,
    pub logs: Vec<SimLog>,
}

/// The objects of the pod's namespace that its spec may refer to.
#[derive(Debug, Clone, Copy)]
pub struct Namespace<'a> {
    pub config_maps: &'a [ConfigMap],
    pub secrets: &'a [Secret],
    pub claims: &'a [PersistentVolumeClaim],
}

/// Free capacity of the simulated nodes, consumed as pods are placed.
#[derive(Debug, Clone)]
pub struct Scheduler {
    nodes: Vec<NodeCapacity>,
}

#[derive(Debug, Clone)]
struct NodeCapacity {
    name: String,
    labels: BTreeMap<String, String>,
    cpu_free: u64,
    memory_free: u64,
    pods_free: u32,
    ready: bool,
}

impl Scheduler {
    pub fn new(world: &World) -> Self {
        let nodes = world
            .nodes
            .iter()
            .map(|n| NodeCapacity {
                name: n.name.clone(),
                labels: n.labels.clone(),
                cpu_free: quantity::cpu_millis(&n.cpu).unwrap_or_default(),
                memory_free: quantity::bytes(&n.memory).unwrap_or_default(),
                pods_free: n.pods,
                ready: n.ready.unwrap_or(true),
            })
            .collect();
        Self { nodes }
    }

    /// Places a pod on the node with the most free memory that fits it, or says why none does,
    /// in the scheduler's words.
    fn place(
        &mut self,
        cpu: u64,
        memory: u64,
        selector: &BTreeMap<String, String>,
    ) -> Result<(usize, String), String> {
        let total = self.nodes.len();
        let mut insufficient_cpu = 0;
        let mut insufficient_memory = 0;
        let mut mismatched = 0;
        let mut not_ready = 0;
        let mut best: Option<usize> = None;
        for (index, node) in self.nodes.iter().enumerate() {
            if !node.ready {
                not_ready += 1;
                continue;
            }
            if !selector.iter().all(|(k, v)| node.labels.get(k) == Some(v)) {
                mismatched += 1;
                continue;
            }
            let cpu_ok = node.cpu_free >= cpu;
            let memory_ok = node.memory_free >= memory;
            insufficient_cpu += u32::from(!cpu_ok);
            insufficient_memory += u32::from(!memory_ok);
            if cpu_ok
                && memory_ok
                && node.pods_free > 0
                && best.is_none_or(|b| self.nodes[b].memory_free < node.memory_free)
            {
                best = Some(index);
            }
        }
        if let Some(index) = best {
            let node = &mut self.nodes[index];
            node.cpu_free -= cpu;
            node.memory_free -= memory;
            node.pods_free -= 1;
            return Ok((index, node.name.clone()));
        }
        let mut reasons = Vec::new();
        if insufficient_cpu > 0 {
            reasons.push(format!("{insufficient_cpu} Insufficient cpu"));
        }
        if insufficient_memory > 0 {
            reasons.push(format!("{insufficient_memory} Insufficient memory"));
        }
        if mismatched > 0 {
            reasons.push(format!(
                "{mismatched} node(s) didn't match Pod's node affinity/selector"
            ));
        }
        if not_ready > 0 {
            reasons.push(format!(
                "{not_ready} node(s) had untolerated taint {{node.kubernetes.io/not-ready: }}"
            ));
        }
        Err(format!(
            "0/{total} nodes are available: {}. preemption: 0/{total} nodes are available: {total} No preemption victims found for incoming pod.",
            reasons.join(", ")
        ))
    }
}

/// Simulates `pod`, created at `created`, up to `now`.
pub fn simulate(
    world: &World,
    scheduler: &mut Scheduler,
    namespace: Namespace<'_>,
    pod: &Pod,
    created: Timestamp,
    now: Timestamp,
) -> PodOutcome {
    let mut events = Vec::new();
    let mut logs = Vec::new();
    let spec = pod.spec.clone().unwrap_or_default();
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let ns_name = pod.metadata.namespace.clone().unwrap_or_default();
    let age = now.duration_since(created).as_secs().max(0) as u64;

    // Volumes that must exist before scheduling (claims) or before start (config, secrets).
    for volume in spec.volumes.iter().flatten() {
        if let Some(claim) = &volume.persistent_volume_claim {
            let bound = namespace
                .claims
                .iter()
                .find(|c| c.metadata.name.as_deref() == Some(&claim.claim_name));
            let message = match bound {
                None => Some(format!("persistentvolumeclaim \"{}\" not found", claim.claim_name)),
                Some(c) if c.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Bound") => {
                    Some("0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.".to_owned())
                }
                Some(_) => None,
            };
            if let Some(message) = message {
                return unschedulable(&message, events, created, now);
            }
        }
    }

    let (cpu, memory) = requests(&spec.containers);
    let selector = spec.node_selector.clone().unwrap_or_default();
    let (node_index, node) = match scheduler.place(cpu, memory, &selector) {
        Ok(placed) => placed,
        Err(message) => {
            return unschedulable(&message, events, created, now);
        }
    };
    let pod_ip = format!(
        "10.244.{}.{}",
        node_index + 1,
        10 + stable_byte(&format!("{ns_name}/{pod_name}")) % 200
    );
    events.push(event(
        false,
        "Scheduled",
        &format!("Successfully assigned {ns_name}/{pod_name} to {node}"),
        1,
        created,
        created,
        "default-scheduler",
    ));

    for volume in spec.volumes.iter().flatten() {
        let missing = if let Some(cm) = &volume.config_map {
            (cm.optional != Some(true) && !has_config_map(namespace, &cm.name))
                .then(|| format!("configmap \"{}\" not found", cm.name))
        } else if let Some(secret) = &volume.secret {
            let name = secret.secret_name.clone().unwrap_or_default();
            (secret.optional != Some(true) && !has_secret(namespace, &name))
                .then(|| format!("secret \"{name}\" not found"))
        } else {
            None
        };
        if let Some(missing) = missing {
            let message = format!(
                "MountVolume.SetUp failed for volume \"{}\" : {missing}",
                volume.name
            );
            events.push(event(
                true,
                "FailedMount",
                &message,
                repeat(age, 120),
                created,
                now,
                "kubelet",
            ));
            let statuses: Vec<Value> = spec
                .containers
                .iter()
                .map(|c| waiting_status(c, "ContainerCreating", None))
                .collect();
            return PodOutcome {
                status: pod_status("Pending", &node, &pod_ip, created, false, &statuses),
                node: Some(node),
                ready: false,
                crashed: false,
                events,
                logs,
            };
        }
    }

    let mut statuses = Vec::new();
    let mut all_ready = true;
    let mut crashed = false;
    for container in &spec.containers {
        let outcome = simulate_container(
            world, namespace, &spec, container, &pod_name, &ns_name, &pod_ip, created, now,
        );
        all_ready &= outcome.ready;
        crashed |= outcome.crashed;
        events.extend(outcome.events);
        logs.extend(outcome.logs);
        statuses.push(outcome.status);
    }
    let mut status = pod_status("Running", &node, &pod_ip, created, all_ready, &statuses);
    if all_ready {
        // Ready since the last container's first readiness probe passed.
        let ready_after = spec
            .containers
            .iter()
            .map(|c| {
                START_SECONDS
                    + c.readiness_probe
                        .as_ref()
                        .and_then(|p| p.initial_delay_seconds)
                        .unwrap_or(0)
                        .max(0) as u64
            })
            .max()
            .unwrap_or(START_SECONDS);
        let ready_at = created
            .checked_add(SignedDuration::from_secs(ready_after as i64))
            .unwrap_or(created)
            .to_string();
        for condition in status["conditions"].as_array_mut().into_iter().flatten() {
            if condition["type"] == "Ready" || condition["type"] == "ContainersReady" {
                condition["lastTransitionTime"] = json!(ready_at);
            }
        }
    }
    PodOutcome {
        status,
        node: Some(node),
        ready: all_ready,
        crashed,
        events,
        logs,
    }
}

struct ContainerOutcome {
    status: Value,
    ready: bool,
    crashed: bool,
    events: Vec<SimEvent>,
    logs: Vec<SimLog>,
}

#[allow(clippy::too_many_arguments)]
fn simulate_container(
    world: &World,
    namespace: Namespace<'_>,
    spec: &k8s_openapi::api::core::v1::PodSpec,
    container: &Container,
    pod_name: &str,
    ns_name: &str,
    pod_ip: &str,
    created: Timestamp,
    now: Timestamp,
) -> ContainerOutcome {
    let age = now.duration_since(created).as_secs().max(0) as u64;
    let image = container.image.clone().unwrap_or_default();
    let mut events = Vec::new();
    // An event the kubelet has been repeating since the pod was created.
    let kubelet = |warning: bool, reason: &str, message: &str, count: u32| {
        event(warning, reason, message, count, created, now, "kubelet")
    };
    let waiting = |reason: &str, message: Option<&str>, events: Vec<SimEvent>| ContainerOutcome {
        status: waiting_status(container, reason, message),
        ready: false,
        crashed: false,
        events,
        logs: Vec::new(),
    };

    // Image.
    let Some(reference) = ImageRef::parse(&image) else {
        let message = format!(
            "Failed to apply default image tag \"{image}\": couldn't parse image name \"{image}\": invalid reference format"
        );
        events.push(kubelet(true, "InspectFailed", &message, repeat(age, 60)));
        events.push(kubelet(
            true,
            "Failed",
            "Error: InvalidImageName",
            repeat(age, 60),
        ));
        return waiting("InvalidImageName", Some(&message), events);
    };
    let model = world.image(&reference);
    let tag_exists =
        model.is_some_and(|m| reference.tag.as_ref().is_none_or(|t| m.tags.contains(t)));
    let pull_denied = model.is_some_and(|m| m.private)
        && spec.image_pull_secrets.iter().flatten().next().is_none();
    if !tag_exists || pull_denied {
        let full = reference.to_string();
        let cause = if pull_denied {
            format!(
                "failed to pull and unpack image \"{full}\": failed to resolve reference \"{full}\": pull access denied, repository does not exist or may require authorization: server message: insufficient_scope: authorization failed"
            )
        } else {
            format!(
                "rpc error: code = NotFound desc = failed to pull and unpack image \"{full}\": failed to resolve reference \"{full}\": {full}: not found"
            )
        };
        events.push(kubelet(
            false,
            "Pulling",
            &format!("Pulling image \"{image}\""),
            repeat(age, 300),
        ));
        events.push(kubelet(
            true,
            "Failed",
            &format!("Failed to pull image \"{image}\": {cause}"),
            repeat(age, 300),
        ));
        events.push(kubelet(
            true,
            "Failed",
            "Error: ErrImagePull",
            repeat(age, 300),
        ));
        events.push(kubelet(
            false,
            "BackOff",
            &format!("Back-off pulling image \"{image}\""),
            repeat(age, 20),
        ));
        events.push(kubelet(
            true,
            "Failed",
            "Error: ImagePullBackOff",
            repeat(age, 20),
        ));
        return waiting(
            "ImagePullBackOff",
            Some(&format!(
                "Back-off pulling image \"{image}\": ErrImagePull: {cause}"
            )),
            events,
        );
    }
    let app = model.map(|m| m.app.clone()).unwrap_or_default();
    let tag = reference.tag.clone().unwrap_or_default();
    let app_name = reference
        .repository
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();

    // Configuration references.
    if let Some(message) = missing_reference(namespace, container, ns_name) {
        events.push(kubelet(
            true,
            "Failed",
            &format!("Error: {message}"),
            repeat(age, 60),
        ));
        return waiting("CreateContainerConfigError", Some(&message), events);
    }
    // The kubelet needs a moment to create and start the container.
    if age < START_SECONDS {
        return waiting("ContainerCreating", None, events);
    }
    events.push(event(
        false,
        "Pulled",
        &format!("Container image \"{image}\" already present on machine"),
        1,
        created,
        created,
        "kubelet",
    ));

    let start_line = format!("{app_name} {tag} starting");
    // Start-up: required environment.
    let env_names = env_names(namespace, container);
    if let Some(missing) = app
        .requires_env
        .iter()
        .find(|name| !env_names.contains(name))
    {
        let log =
            format!("{start_line}\nFATAL: required environment variable {missing} is not set\n");
        return crash_loop(
            container, pod_name, ns_name, created, now, 1, 1, "Error", &log, events, None,
        );
    }
    // Memory.
    let limit = container
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.get("memory"))
        .and_then(|q| quantity::bytes(&q.0));
    let usage = app.memory.as_deref().and_then(quantity::bytes);
    if let (Some(limit), Some(usage)) = (limit, usage)
        && usage > limit
    {
        let mut log = format!("{start_line}\n");
        let mut step = 32 * 1024 * 1024;
        while step < limit {
            log.push_str(&format!("working set {}\n", quantity::format_bytes(step)));
            step *= 2;
        }
        return crash_loop(
            container,
            pod_name,
            ns_name,
            created,
            now,
            4,
            137,
            "OOMKilled",
            &log,
            events,
            None,
        );
    }
    let serving_log = match app.port {
        Some(port) => format!("{start_line}\nlistening on :{port}\n"),
        None => format!("{start_line}\nready\n"),
    };
    // Probes that restart the container.
    for (kind, probe) in [
        ("Startup", &container.startup_probe),
        ("Liveness", &container.liveness_probe),
    ] {
        let Some(probe) = probe else { continue };
        if let Err(failure) = probe_result(probe, container, &app, pod_ip) {
            let period = probe.period_seconds.unwrap_or(10).max(1) as u64;
            let threshold = probe.failure_threshold.unwrap_or(3).max(1) as u64;
            let run = probe.initial_delay_seconds.unwrap_or(0).max(0) as u64 + period * threshold;
            events.push(kubelet(
                true,
                "Unhealthy",
                &format!("{kind} probe failed: {failure}"),
                repeat(age, period),
            ));
            events.push(kubelet(
                false,
                "Killing",
                &format!(
                    "Container {} failed {} probe, will be restarted",
                    container.name,
                    kind.to_lowercase()
                ),
                repeat(age, run.max(1)),
            ));
            let log = format!("{serving_log}received SIGTERM, shutting down\n");
            return crash_loop(
                container,
                pod_name,
                ns_name,
                created,
                now,
                run,
                143,
                "Error",
                &log,
                events,
                Some(serving_log.clone()),
            );
        }
    }
    events.push(event(
        false,
        "Created",
        &format!("Created container: {}", container.name),
        1,
        created,
        created,
        "kubelet",
    ));
    events.push(event(
        false,
        "Started",
        &format!("Started container {}", container.name),
        1,
        created,
        created,
        "kubelet",
    ));
    let mut ready = true;
    if let Some(probe) = &container.readiness_probe {
        if let Err(failure) = probe_result(probe, container, &app, pod_ip) {
            let period = probe.period_seconds.unwrap_or(10).max(1) as u64;
            events.push(kubelet(
                true,
                "Unhealthy",
                &format!("Readiness probe failed: {failure}"),
                repeat(age, period),
            ));
            ready = false;
        } else {
            // The first probe runs once the initial delay has passed since the start.
            let first_probe =
                START_SECONDS + probe.initial_delay_seconds.unwrap_or(0).max(0) as u64;
            ready = age >= first_probe;
        }
    }
    ContainerOutcome {
        status: json!({
            "name": container.name,
            "image": image,
            "imageID": format!("{}@sha256:{:064x}", reference.full_repository(), u128::from(stable_byte(&image))),
            "ready": ready,
            "started": true,
            "restartCount": 0,
            "state": {"running": {"startedAt": created.checked_add(SignedDuration::from_secs(START_SECONDS as i64)).unwrap_or(created).to_string()}},
        }),
        ready,
        crashed: false,
        events,
        logs: vec![SimLog {
            container: container.name.clone(),
            previous: false,
            text: serving_log,
        }],
    }
}

/// Seconds from a pod's creation to its containers' start.
const START_SECONDS: u64 = 3;

/// What the kubelet keeps of a log for a `FallbackToLogsOnError` termination message: the last
/// 80 lines, at most 2048 bytes.
pub(crate) fn log_tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let mut tail = lines[lines.len().saturating_sub(80)..].join("\n");
    if tail.len() > 2048 {
        let mut cut = tail.len() - 2048;
        while !tail.is_char_boundary(cut) {
            cut += 1;
        }
        tail = tail[cut..].to_owned();
    }
    tail
}

/// A container that keeps dying after `run` seconds: restarts follow the kubelet's back-off
/// (10 s doubling to 5 min), and the status shows the last termination.
#[allow(clippy::too_many_arguments)]
fn crash_loop(
    container: &Container,
    pod_name: &str,
    ns_name: &str,
    created: Timestamp,
    now: Timestamp,
    run: u64,
    exit_code: i32,
    reason: &str,
    log: &str,
    mut events: Vec<SimEvent>,
    current_log: Option<String>,
) -> ContainerOutcome {
    let age = now.duration_since(created).as_secs().max(0) as u64;
    let mut started = START_SECONDS;
    let mut crashes = 0u32;
    let mut backoff = 10;
    let mut last_start = started;
    let mut in_backoff = false;
    loop {
        if started + run > age {
            break;
        }
        crashes += 1;
        last_start = started;
        let next = started + run + backoff;
        if next > age {
            in_backoff = true;
            break;
        }
        started = next;
        backoff = (backoff * 2).min(300);
    }
    let at = |secs: u64| {
        created
            .checked_add(SignedDuration::from_secs(secs as i64))
            .unwrap_or(created)
            .to_string()
    };
    let mut terminated = json!({
        "exitCode": exit_code,
        "reason": reason,
        "startedAt": at(last_start),
        "finishedAt": at(last_start + run),
    });
    if container.termination_message_policy.as_deref() == Some("FallbackToLogsOnError") {
        terminated["message"] = json!(log_tail(log));
    }
    let restart_count = if in_backoff {
        crashes.saturating_sub(1)
    } else {
        crashes
    };
    let state = if in_backoff {
        json!({"waiting": {"reason": "CrashLoopBackOff", "message": format!("back-off {}s restarting failed container={} pod={pod_name}_{ns_name}", backoff.min(300), container.name)}})
    } else {
        json!({"running": {"startedAt": at(started)}})
    };
    let mut status = json!({
        "name": container.name,
        "image": container.image.clone().unwrap_or_default(),
        "ready": false,
        "started": !in_backoff,
        "restartCount": restart_count,
        "state": state,
    });
    if crashes > 0 {
        status["lastState"] = json!({"terminated": terminated});
        events.push(event(
            true,
            "BackOff",
            &format!(
                "Back-off restarting failed container {} in pod {pod_name}_{ns_name}",
                container.name
            ),
            crashes,
            created,
            now,
            "kubelet",
        ));
    }
    let mut logs = vec![SimLog {
        container: container.name.clone(),
        previous: false,
        text: if in_backoff {
            log.to_owned()
        } else {
            current_log.unwrap_or_else(|| log.to_owned())
        },
    }];
    if crashes > 0 {
        logs.push(SimLog {
            container: container.name.clone(),
            previous: true,
            text: log.to_owned(),
        });
    }
    ContainerOutcome {
        status,
        ready: false,
        crashed: crashes > 0,
        events,
        logs,
    }
}

/// Runs a probe against the application model; `Err` carries the kubelet's failure message.
fn probe_result(
    probe: &Probe,
    container: &Container,
    app: &AppModel,
    pod_ip: &str,
) -> Result<(), String> {
    let timeout_ms = u64::try_from(probe.timeout_seconds.unwrap_or(1).max(1)).unwrap_or(1) * 1000;
    if let Some(http) = &probe.http_get {
        let port = resolve_port(&http.port, container);
        let path = http.path.clone().unwrap_or_else(|| "/".to_owned());
        let url = format!("http://{pod_ip}:{port}{path}");
        if app.port != Some(port) {
            return Err(format!(
                "Get \"{url}\": dial tcp {pod_ip}:{port}: connect: connection refused"
            ));
        }
        if !app.paths.is_empty() && !app.paths.contains(&path) {
            return Err("HTTP probe failed with statuscode: 404".to_owned());
        }
        if app
            .latency_ms
            .get(&path)
            .is_some_and(|latency| *latency >= timeout_ms)
        {
            return Err(format!(
                "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            ));
        }
        return Ok(());
    }
    if let Some(tcp) = &probe.tcp_socket {
        let port = resolve_port(&tcp.port, container);
        if app.port != Some(port) {
            return Err(format!(
                "dial tcp {pod_ip}:{port}: connect: connection refused"
            ));
        }
        return Ok(());
    }
    if let Some(grpc) = &probe.grpc
        && app.port != Some(grpc.port)
    {
        return Err(format!(
            "timeout: failed to connect service \"{pod_ip}:{}\" within 1s",
            grpc.port
        ));
    }
    Ok(())
}

fn resolve_port(port: &IntOrString, container: &Container) -> i32 {
    match port {
        IntOrString::Int(port) => *port,
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))
            .map_or(0, |p| p.container_port),
    }
}

fn has_config_map(namespace: Namespace<'_>, name: &str) -> bool {
    namespace
        .config_maps
        .iter()
        .any(|c| c.metadata.name.as_deref() == Some(name))
}

fn has_secret(namespace: Namespace<'_>, name: &str) -> bool {
    namespace
        .secrets
        .iter()
        .any(|s| s.metadata.name.as_deref() == Some(name))
}

fn config_map_keys<'a>(namespace: Namespace<'a>, name: &str) -> Option<Vec<&'a String>> {
    let cm = namespace
        .config_maps
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(name))?;
    Some(
        cm.data
            .iter()
            .flat_map(|d| d.keys())
            .chain(cm.binary_data.iter().flat_map(|d| d.keys()))
            .collect(),
    )
}

fn secret_keys<'a>(namespace: Namespace<'a>, name: &str) -> Option<Vec<&'a String>> {
    let secret = namespace
        .secrets
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some(name))?;
    Some(secret.data.iter().flat_map(|d| d.keys()).collect())
}

/// The kubelet's `CreateContainerConfigError` message for the first unresolvable reference.
fn missing_reference(
    namespace: Namespace<'_>,
    container: &Container,
    ns_name: &str,
) -> Option<String> {
    for env in container.env.iter().flatten() {
        let Some(source) = &env.value_from else {
            continue;
        };
        let references = [
            source
                .config_map_key_ref
                .as_ref()
                .filter(|r| r.optional != Some(true))
                .map(|r| {
                    (
                        "ConfigMap",
                        &r.name,
                        &r.key,
                        config_map_keys(namespace, &r.name),
                    )
                }),
            source
                .secret_key_ref
                .as_ref()
                .filter(|r| r.optional != Some(true))
                .map(|r| ("Secret", &r.name, &r.key, secret_keys(namespace, &r.name))),
        ];
        for (kind, name, key, keys) in references.into_iter().flatten() {
            match keys {
                None => return Some(format!("{} \"{name}\" not found", kind.to_lowercase())),
                Some(keys) if !keys.contains(&key) => {
                    return Some(format!(
                        "couldn't find key {key} in {kind} {ns_name}/{name}"
                    ));
                }
                Some(_) => {}
            }
        }
    }
    for source in container.env_from.iter().flatten() {
        if let Some(reference) = &source.config_map_ref
            && reference.optional != Some(true)
            && !has_config_map(namespace, &reference.name)
        {
            return Some(format!("configmap \"{}\" not found", reference.name));
        }
        if let Some(reference) = &source.secret_ref
            && reference.optional != Some(true)
            && !has_secret(namespace, &reference.name)
        {
            return Some(format!("secret \"{}\" not found", reference.name));
        }
    }
    None
}

/// Names of the environment variables a container gets.
fn env_names(namespace: Namespace<'_>, container: &Container) -> Vec<String> {
    let mut names: Vec<String> = container
        .env
        .iter()
        .flatten()
        .map(|e| e.name.clone())
        .collect();
    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.clone().unwrap_or_default();
        let keys = if let Some(reference) = &source.config_map_ref {
            config_map_keys(namespace, &reference.name).unwrap_or_default()
        } else if let Some(reference) = &source.secret_ref {
            secret_keys(namespace, &reference.name).unwrap_or_default()
        } else {
            Vec::new()
        };
        names.extend(keys.into_iter().map(|k| format!("{prefix}{k}")));
    }
    names
}

/// Total CPU (millicores) and memory (bytes) requests; a limit without a request counts as the
/// request, as the API server defaults it.
pub fn requests(containers: &[Container]) -> (u64, u64) {
    let mut cpu = 0;
    let mut memory = 0;
    for container in containers {
        let resources = container.resources.clone().unwrap_or_default();
        let get = |name: &str| {
            resources
                .requests
                .as_ref()
                .and_then(|r| r.get(name))
                .or_else(|| resources.limits.as_ref().and_then(|l| l.get(name)))
                .map(|q| q.0.clone())
        };
        cpu += get("cpu")
            .and_then(|q| quantity::cpu_millis(&q))
            .unwrap_or_default();
        memory += get("memory")
            .and_then(|q| quantity::bytes(&q))
            .unwrap_or_default();
    }
    (cpu, memory)
}

/// A pod the scheduler cannot place: Pending, with the scheduler's event.
fn unschedulable(
    message: &str,
    mut events: Vec<SimEvent>,
    created: Timestamp,
    now: Timestamp,
) -> PodOutcome {
    let age = now.duration_since(created).as_secs().max(0) as u64;
    events.push(event(
        true,
        "FailedScheduling",
        message,
        repeat(age, 300),
        created,
        now,
        "default-scheduler",
    ));
    PodOutcome {
        status: json!({
            "phase": "Pending",
            "qosClass": "Burstable",
            "conditions": [{
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
                "lastTransitionTime": created.to_string(),
            }],
        }),
        node: None,
        ready: false,
        crashed: false,
        events,
        logs: Vec::new(),
    }
}

fn waiting_status(container: &Container, reason: &str, message: Option<&str>) -> Value {
    let mut waiting = json!({"reason": reason});
    if let Some(message) = message {
        waiting["message"] = json!(message);
    }
    json!({
        "name": container.name,
        "image": container.image.clone().unwrap_or_default(),
        "imageID": "",
        "ready": false,
        "started": false,
        "restartCount": 0,
        "state": {"waiting": waiting},
    })
}

fn pod_status(
    phase: &str,
    node: &str,
    pod_ip: &str,
    created: Timestamp,
    ready: bool,
    statuses: &[Value],
) -> Value {
    let time = created.to_string();
    let flag = if ready { "True" } else { "False" };
    let mut not_ready = json!({"type": "Ready", "status": flag, "lastTransitionTime": time});
    let mut containers_ready =
        json!({"type": "ContainersReady", "status": flag, "lastTransitionTime": time});
    if !ready {
        let names: Vec<&str> = statuses
            .iter()
            .filter(|s| s["ready"] != json!(true))
            .filter_map(|s| s["name"].as_str())
            .collect();
        let message = format!("containers with unready status: [{}]", names.join(" "));
        for condition in [&mut not_ready, &mut containers_ready] {
            condition["reason"] = json!("ContainersNotReady");
            condition["message"] = json!(message);
        }
    }
    json!({
        "phase": phase,
        "hostIP": format!("192.168.49.{}", 2 + stable_byte(node) % 50),
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": time,
        "qosClass": "Burstable",
        "conditions": [
            {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": time},
            {"type": "Initialized", "status": "True", "lastTransitionTime": time},
            not_ready,
            containers_ready,
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": time},
        ],
        "containerStatuses": statuses,
    })
}

/// How often something repeating every `period` seconds happened within `age` seconds.
fn repeat(age: u64, period: u64) -> u32 {
    u32::try_from(age / period.max(1))
        .unwrap_or(u32::MAX)
        .max(1)
}

fn event(
    warning: bool,
    reason: &str,
    message: &str,
    count: u32,
    first: Timestamp,
    last: Timestamp,
    component: &'static str,
) -> SimEvent {
    SimEvent {
        warning,
        reason: reason.to_owned(),
        message: message.to_owned(),
        count,
        first,
        last,
        component,
    }
}

/// A byte derived from text, stable across runs (FNV-1a).
pub fn stable_byte(text: &str) -> u64 {
    stable_hash(text) & 0xff
}

/// A 64-bit hash of text, stable across runs and platforms (FNV-1a).
pub fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}
