//! kwok pod stages generated from the world model (`examples/mock-world.yaml`).
//!
//! kwok stands in for the kubelet: a Stage matches pods with jq expressions and patches their
//! status. The stages here make a pod spec behave on the e2e control plane as it does in the
//! simulator of `--mock`, from the same world model, so one set of `examples/incidents/`
//! manifests serves both: an image tag the world does not have goes `ImagePullBackOff`, an
//! application started without an environment variable it requires crash-loops (and says so in
//! its termination message when the container asks for `FallbackToLogsOnError`), a memory limit
//! below the application's need is `OOMKilled`, a liveness or startup probe that misses the
//! application's port, path or latency restarts the container, a failing readiness probe keeps
//! the pod out of its Services, and anything else becomes Running and Ready.
//!
//! Each pod gets one *fate*, computed by a jq program over its spec in which the world model is
//! embedded as data: the first failing container's fate, else `ready`. The stages are the states
//! of that fate's lifecycle. What kwok cannot see, the stages do not model: the contents of
//! ConfigMaps and Secrets (a container with `envFrom` is taken to have its variables; missing
//! references are for the kubelet, not kwok), exec probes (they pass), and per-container
//! differences within one failing pod (every container shows the pod's failure).
//!
//! Any pod Stage given to kwok replaces its built-in pod stages, so the whole lifecycle is here,
//! deletion included. Time is compressed: a crash-looping container runs 2 s and backs off 4 s.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use aegis_cluster::sim::world::{AppModel, World};
use aegis_core::image::ImageRef;
use aegis_core::quantity;
use serde_json::{Value, json};

/// How long a crash-looping container runs before it dies, in milliseconds.
const RUN_MS: u64 = 2_000;
/// How long the (compressed) kubelet back-off lasts before a restart, in milliseconds.
const BACKOFF_MS: u64 = 4_000;

/// Every spelling of an image the world has, mapped to the model of its application.
fn known_images(world: &World) -> BTreeMap<String, Value> {
    let mut images = BTreeMap::new();
    for model in &world.images {
        let Some(reference) = ImageRef::parse(&format!("{}:x", model.repository)) else {
            continue;
        };
        let mut names = vec![reference.full_repository()];
        if reference.registry == "docker.io" {
            names.push(reference.repository.clone());
            if let Some(short) = reference.repository.strip_prefix("library/") {
                names.push(short.to_owned());
            }
        }
        let app = app_data(&model.app);
        for name in &names {
            for tag in &model.tags {
                images.insert(format!("{name}:{tag}"), app.clone());
            }
        }
    }
    images
}

/// What the fate program needs to know about an application.
fn app_data(app: &AppModel) -> Value {
    json!({
        "port": app.port,
        "paths": app.paths,
        "memory": app.memory.as_deref().and_then(quantity::bytes),
        "env": app.requires_env,
        "latency": app.latency_ms,
    })
}

/// The jq program giving a pod its fate: `image-not-found`, `missing-env:NAME`, `oom`,
/// `liveness:MODE`, `startup:MODE`, `readiness:MODE` (MODE: `refused`, `404`, `timeout`) or
/// `ready`.
fn fate_program(apps: &BTreeMap<String, Value>) -> String {
    let apps = serde_json::to_string(apps).unwrap_or_else(|_| "{}".to_owned());
    format!(
        r#"def bytes: if . == null then null else (tostring | ([capture("^(?<n>[0-9.]+)(?<u>[A-Za-z]*)$")] | first) as $q | if $q == null then null else ($q.n | tonumber) * ({{"": 1, "k": 1000, "M": 1000000, "G": 1000000000, "T": 1000000000000, "Ki": 1024, "Mi": 1048576, "Gi": 1073741824, "Ti": 1099511627776}}[$q.u] // 1) end) end;
def port($c): if type == "number" then . else (. as $n | [$c.ports[]? | select(.name == $n) | .containerPort] | first // 0) end;
def probe($c; $app):
  if .httpGet then
    (.httpGet.port | port($c)) as $p | (.httpGet.path // "/") as $path |
    if $app.port != $p then "refused"
    elif ($app.paths | length) > 0 and ($app.paths | any(.[]; . == $path) | not) then "404"
    elif ($app.latency[$path] // 0) >= ((.timeoutSeconds // 1) * 1000) then "timeout"
    else "ok" end
  elif .tcpSocket then (if $app.port != (.tcpSocket.port | port($c)) then "refused" else "ok" end)
  elif .grpc then (if $app.port != .grpc.port then "refused" else "ok" end)
  else "ok" end;
def fate($apps):
  . as $c | $apps[.image] as $app |
  if $app == null then "image-not-found"
  else
    [.env[]?.name] as $names |
    ([$app.env[] | select(. as $v | $names | any(.[]; . == $v) | not)] | first) as $missing |
    (.resources.limits.memory | bytes) as $limit |
    if $missing != null and ((.envFrom // []) | length) == 0 then "missing-env:" + $missing
    elif $limit != null and $app.memory != null and $app.memory > $limit then "oom"
    elif .startupProbe and ((.startupProbe | probe($c; $app)) != "ok") then "startup:" + (.startupProbe | probe($c; $app))
    elif .livenessProbe and ((.livenessProbe | probe($c; $app)) != "ok") then "liveness:" + (.livenessProbe | probe($c; $app))
    elif .readinessProbe and ((.readinessProbe | probe($c; $app)) != "ok") then "readiness:" + (.readinessProbe | probe($c; $app))
    else "ready" end
  end;
{apps} as $apps | [.spec.containers[] | fate($apps)] | (map(select(. != "ready")) | first) // "ready""#
    )
}

/// A crash-looping fate: how the container dies, and what the kubelet says about it.
struct Crash {
    fate: String,
    exit_code: i32,
    reason: &'static str,
    /// The last log lines, for a termination message that falls back to the log.
    log: Option<String>,
    /// The event when the container (re)starts.
    start_event: Value,
    /// The event when it dies.
    death_event: Value,
}

fn event(warning: bool, reason: &str, message: &str) -> Value {
    json!({"type": if warning { "Warning" } else { "Normal" }, "reason": reason, "message": message})
}

/// What a probe failure of each mode says in the kubelet's event.
fn probe_failure(mode: &str) -> &'static str {
    match mode {
        "404" => "HTTP probe failed with statuscode: 404",
        "timeout" => "context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
        _ => "dial tcp: connect: connection refused",
    }
}

fn crashes(world: &World) -> Vec<Crash> {
    let back_off = event(
        true,
        "BackOff",
        "Back-off restarting failed container in pod",
    );
    let started = event(false, "Started", "Started container");
    let mut out = Vec::new();
    let mut variables: Vec<&String> = world
        .images
        .iter()
        .flat_map(|m| &m.app.requires_env)
        .collect();
    variables.sort();
    variables.dedup();
    for variable in variables {
        out.push(Crash {
            fate: format!("missing-env:{variable}"),
            exit_code: 1,
            reason: "Error",
            log: Some(format!(
                "FATAL: required environment variable {variable} is not set"
            )),
            start_event: started.clone(),
            death_event: back_off.clone(),
        });
    }
    out.push(Crash {
        fate: "oom".to_owned(),
        exit_code: 137,
        reason: "OOMKilled",
        log: None,
        start_event: started,
        death_event: back_off,
    });
    for (kind, word) in [("liveness", "Liveness"), ("startup", "Startup")] {
        for mode in ["refused", "404", "timeout"] {
            out.push(Crash {
                fate: format!("{kind}:{mode}"),
                exit_code: 143,
                reason: "Error",
                log: None,
                start_event: event(
                    true,
                    "Unhealthy",
                    &format!("{word} probe failed: {}", probe_failure(mode)),
                ),
                death_event: event(
                    false,
                    "Killing",
                    &format!("Container failed {kind} probe, will be restarted"),
                ),
            });
        }
    }
    out
}

/// A pod Stage.
fn stage(
    name: &str,
    expressions: &[(&str, &str, &[&str])],
    delay_ms: u64,
    event: Option<Value>,
    status_template: Option<String>,
    delete: bool,
) -> Value {
    let expressions: Vec<Value> = expressions
        .iter()
        .map(|(key, operator, values)| {
            let mut expression = json!({"key": key, "operator": operator});
            if !values.is_empty() {
                expression["values"] = json!(values);
            }
            expression
        })
        .collect();
    let mut next = json!({});
    if let Some(event) = event {
        next["event"] = event;
    }
    if let Some(template) = status_template {
        next["statusTemplate"] = json!(template);
    }
    if delete {
        next["delete"] = json!(true);
    }
    json!({
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": name},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
            "selector": {"matchExpressions": expressions},
            "delay": {"durationMilliseconds": delay_ms},
            "next": next,
        }
    })
}

const ALIVE: (&str, &str, &[&str]) = (".metadata.deletionTimestamp", "DoesNotExist", &[]);
/// Containers being created, or a pull that failed for an image the spec no longer names (the
/// kubelet pulls the new image of a patched pod).
const CREATING: &str = r#"([.status.containerStatuses[]?.state.waiting.reason] | any(. == "ContainerCreating")) or (([.status.containerStatuses[]?.state.waiting.reason] | any(. == "ImagePullBackOff")) and ([.spec.containers[].image] | sort) != ([.status.containerStatuses[]?.image] | sort))"#;
/// Containers that run.
const RUNNING: &str = "[.status.containerStatuses[]?.state.running] | any(. != null)";
/// Containers about to (re)start: being created, or waiting out a crash back-off.
const BACKING_OFF: &str = r#"([.status.containerStatuses[]?.state.waiting.reason] | any(. == "ContainerCreating" or . == "CrashLoopBackOff")) or (([.status.containerStatuses[]?.state.waiting.reason] | any(. == "ImagePullBackOff")) and ([.spec.containers[].image] | sort) != ([.status.containerStatuses[]?.image] | sort))"#;

/// Conditions of a running pod whose containers are (not) ready.
fn conditions(ready: bool) -> String {
    let (status, reason) = if ready {
        ("\"True\"", String::new())
    } else {
        (
            "\"False\"",
            "\n  reason: ContainersNotReady\n  message: {{ printf \"containers with unready status: [%s]\" (join \" \" $names) | Quote }}"
                .to_owned(),
        )
    };
    format!(
        "conditions:\n- type: Ready\n  status: {status}\n  lastProbeTime: null\n  lastTransitionTime: {{{{ $now | Quote }}}}{reason}\n- type: ContainersReady\n  status: {status}\n  lastProbeTime: null\n  lastTransitionTime: {{{{ $now | Quote }}}}{reason}\n"
    )
}

/// The template prologue: the time, the pod, and the container names.
const PROLOGUE: &str = "{{ $now := Now }}{{ $pod := . }}{{ $names := list }}{{ range .spec.containers }}{{ $names = append $names .name }}{{ end }}\n";

/// Looks up the container's current status as `$st` (inside `range .spec.containers`).
const CURRENT: &str = "{{ $name := .name }}{{ $st := dict \"restartCount\" 0 }}{{ range $pod.status.containerStatuses }}{{ if eq .name $name }}{{ $st = . }}{{ end }}{{ end }}";

fn status_ready(ready: bool) -> String {
    format!(
        "{PROLOGUE}{conditions}containerStatuses:\n{{{{ range .spec.containers }}}}{CURRENT}\n- image: {{{{ .image | Quote }}}}\n  name: {{{{ .name | Quote }}}}\n  ready: {ready}\n  started: true\n  restartCount: {{{{ $st.restartCount }}}}\n  state:\n    running:\n      startedAt: {{{{ $now | Quote }}}}\n{{{{ end }}}}\nphase: Running\nstartTime: {{{{ $now | Quote }}}}\n",
        conditions = conditions(ready)
    )
}

fn status_image_not_found(known: &[&String]) -> String {
    let list = known
        .iter()
        .map(|i| serde_json::to_string(i).unwrap_or_default())
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "{PROLOGUE}{{{{ $known := list {list} }}}}containerStatuses:\n{{{{ range .spec.containers }}}}\n- image: {{{{ .image | Quote }}}}\n  name: {{{{ .name | Quote }}}}\n  ready: false\n  started: false\n  restartCount: 0\n  state:\n{{{{ if has .image $known }}}}    waiting:\n      reason: ContainerCreating\n{{{{ else }}}}    waiting:\n      reason: ImagePullBackOff\n      message: {{{{ printf \"Back-off pulling image %q: ErrImagePull: rpc error: code = NotFound desc = failed to pull and unpack image %q: not found\" .image .image | Quote }}}}\n{{{{ end }}}}{{{{ end }}}}\n"
    )
}

/// A restarted container: running again, not ready, its last termination kept.
fn status_restarted() -> String {
    format!(
        "{PROLOGUE}{conditions}containerStatuses:\n{{{{ range .spec.containers }}}}{CURRENT}\n- image: {{{{ .image | Quote }}}}\n  name: {{{{ .name | Quote }}}}\n  ready: false\n  started: true\n  restartCount: {{{{ $st.restartCount }}}}\n{{{{ with $st.lastState }}}}  lastState: {{{{ toJson . }}}}\n{{{{ end }}}}  state:\n    running:\n      startedAt: {{{{ $now | Quote }}}}\n{{{{ end }}}}\nphase: Running\n",
        conditions = conditions(false)
    )
}

/// A container that just died and waits in back-off.
fn status_crashed(crash: &Crash) -> String {
    let message = crash.log.as_ref().map_or_else(String::new, |log| {
        format!(
            "{{{{ if eq (default \"File\" .terminationMessagePolicy) \"FallbackToLogsOnError\" }}}}      message: {}\n{{{{ end }}}}",
            serde_json::to_string(&format!("{log}\n")).unwrap_or_default()
        )
    });
    format!(
        "{PROLOGUE}containerStatuses:\n{{{{ range .spec.containers }}}}{CURRENT}{{{{ $started := $now }}}}{{{{ with $st.state }}}}{{{{ with .running }}}}{{{{ $started = .startedAt }}}}{{{{ end }}}}{{{{ end }}}}\n- image: {{{{ .image | Quote }}}}\n  name: {{{{ .name | Quote }}}}\n  ready: false\n  started: false\n  restartCount: {{{{ add1 $st.restartCount }}}}\n  lastState:\n    terminated:\n      exitCode: {code}\n      reason: {reason}\n      startedAt: {{{{ $started | Quote }}}}\n      finishedAt: {{{{ $now | Quote }}}}\n{message}  state:\n    waiting:\n      reason: CrashLoopBackOff\n      message: {{{{ printf \"back-off 10s restarting failed container=%s pod=%s_%s\" .name $pod.metadata.name $pod.metadata.namespace | Quote }}}}\n{{{{ end }}}}\nphase: Running\n",
        code = crash.exit_code,
        reason = crash.reason,
    )
}

/// The pod-create stage: scheduled pods get IPs and containers that are being created.
fn status_created() -> String {
    format!(
        "{PROLOGUE}{conditions}- type: Initialized\n  status: \"True\"\n  lastProbeTime: null\n  lastTransitionTime: {{{{ $now | Quote }}}}\ncontainerStatuses:\n{{{{ range .spec.containers }}}}\n- image: {{{{ .image | Quote }}}}\n  name: {{{{ .name | Quote }}}}\n  ready: false\n  started: false\n  restartCount: 0\n  state:\n    waiting:\n      reason: ContainerCreating\n{{{{ end }}}}\nhostIP: {{{{ NodeIPWith .spec.nodeName | Quote }}}}\npodIP: {{{{ PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid \"\" ) ( or .metadata.name \"\" ) ( or .metadata.namespace \"\" ) | Quote }}}}\nphase: Pending\n",
        conditions = conditions(false)
    )
}

/// The kwok configuration (a multi-document YAML stream of Stages) for `world`.
pub fn pod_stages(world: &World) -> String {
    let apps = known_images(world);
    let fate = fate_program(&apps);
    let known: Vec<&String> = apps.keys().collect();
    let mut stages = vec![
        stage(
            "pod-create",
            &[ALIVE, (".status.podIP", "DoesNotExist", &[])],
            200,
            None,
            Some(status_created()),
            false,
        ),
        stage(
            "pod-image-not-found",
            &[
                ALIVE,
                (CREATING, "In", &["true"]),
                (&fate, "In", &["image-not-found"]),
            ],
            300,
            Some(event(
                true,
                "Failed",
                "Error: ImagePullBackOff: the image tag does not exist in the registry",
            )),
            Some(status_image_not_found(&known)),
            false,
        ),
        stage(
            "pod-ready",
            &[
                ALIVE,
                (CREATING, "In", &["true"]),
                (&fate, "In", &["ready"]),
            ],
            500,
            None,
            Some(status_ready(true)),
            false,
        ),
    ];
    for mode in ["refused", "404", "timeout"] {
        let value = format!("readiness:{mode}");
        stages.push(stage(
            &format!("pod-readiness-{mode}"),
            &[ALIVE, (CREATING, "In", &["true"]), (&fate, "In", &[&value])],
            500,
            Some(event(
                true,
                "Unhealthy",
                &format!("Readiness probe failed: {}", probe_failure(mode)),
            )),
            Some(status_ready(false)),
            false,
        ));
    }
    for crash in crashes(world) {
        let slug = crash
            .fate
            .replace(':', "-")
            .to_lowercase()
            .replace('_', "-");
        stages.push(stage(
            &format!("pod-{slug}-start"),
            &[
                ALIVE,
                (BACKING_OFF, "In", &["true"]),
                (&fate, "In", &[&crash.fate]),
            ],
            BACKOFF_MS,
            Some(crash.start_event.clone()),
            Some(status_restarted()),
            false,
        ));
        stages.push(stage(
            &format!("pod-{slug}-crash"),
            &[
                ALIVE,
                (RUNNING, "In", &["true"]),
                (&fate, "In", &[&crash.fate]),
            ],
            RUN_MS,
            Some(crash.death_event.clone()),
            Some(status_crashed(&crash)),
            false,
        ));
    }
    stages.push(stage(
        "pod-delete",
        &[
            (".metadata.deletionTimestamp", "Exists", &[]),
            (".metadata.finalizers", "DoesNotExist", &[]),
        ],
        200,
        None,
        None,
        true,
    ));
    let mut out = String::from(
        "# kwok pod stages generated from examples/mock-world.yaml by aegis-e2e (stages.rs).\n",
    );
    for stage in stages {
        let _ = writeln!(
            out,
            "---\n{}",
            serde_json::to_string_pretty(&stage).unwrap_or_default()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> World {
        let path = crate::workspace_root().join("examples/mock-world.yaml");
        World::parse(&std::fs::read_to_string(path).expect("the world file")).expect("it parses")
    }

    #[test]
    fn every_spelling_of_a_known_image_and_no_other_tag_is_known() {
        let images = known_images(&world());
        for known in [
            "nginx:1.25.3",
            "library/nginx:1.25.3",
            "docker.io/library/nginx:1.27.2",
            "ghcr.io/aegis-demo/orders-api:2.3.1",
        ] {
            assert!(images.contains_key(known), "{known}");
        }
        for unknown in [
            "nginx:1.25.33",
            "nginx",
            "nginx:latest",
            "orders-api:2.3.1",
            "ghcr.io/aegis-demo/orders-api:9.9.9",
        ] {
            assert!(!images.contains_key(unknown), "{unknown}");
        }
        assert_eq!(
            images["ghcr.io/aegis-demo/orders-api:2.3.1"]["env"],
            json!(["DATABASE_URL"])
        );
        assert_eq!(
            images["ghcr.io/aegis-demo/trainer:0.9.1"]["memory"],
            json!(2_147_483_648_u64)
        );
    }

    #[test]
    fn each_failure_of_the_world_has_its_stages_with_unique_names() {
        let text = pod_stages(&world());
        let names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("\"name\": \""))
            .map(|n| n.trim_end_matches(['"', ',']))
            .collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        for name in [
            "pod-create",
            "pod-ready",
            "pod-image-not-found",
            "pod-readiness-refused",
            "pod-missing-env-database-url-start",
            "pod-missing-env-database-url-crash",
            "pod-oom-crash",
            "pod-liveness-refused-crash",
            "pod-delete",
        ] {
            assert!(names.contains(&name), "{name} in {names:?}");
        }
    }
}
