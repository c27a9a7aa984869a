//! A synthetic snapshot of a large cluster, in the format `kubectl get … -A -o yaml` writes:
//! Deployments of ten replicas spread over namespaces and nodes, with a mix of failures —
//! crash loops on a missing variable (with their logs), OOM kills, bad image tags, failing
//! readiness probes and pods too large to schedule — and their ReplicaSets, Services,
//! EndpointSlices, ConfigMaps and events.

use std::fs;
use std::path::Path;

use anyhow::Result;
use serde_json::{Value, json};

const REPLICAS: usize = 10;
/// Namespaces and nodes of a 10,000-pod snapshot; larger ones have more of both (a namespace
/// per 500 pods, a node per 100), as larger clusters do.
const NAMESPACES: usize = 20;
const NODES: usize = 100;
const NOW: &str = "2026-03-14T09:30:00Z";
const CREATED: &str = "2026-03-14T08:45:00Z";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Failure {
    Healthy,
    MissingEnv,
    Oom,
    BadImage,
    Unready,
    Unschedulable,
}

fn failure_of(deployment: usize) -> Failure {
    match deployment % 10 {
        0 => Failure::MissingEnv,
        1 => Failure::Oom,
        2 => Failure::BadImage,
        3 => Failure::Unready,
        4 => Failure::Unschedulable,
        _ => Failure::Healthy,
    }
}

fn write_list(dir: &Path, file: &str, items: &[Value]) -> Result<usize> {
    let count = items.len();
    let list = json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items});
    fs::write(dir.join(file), serde_yaml::to_string(&list)?)?;
    Ok(count)
}

/// Writes a snapshot of `pods` pods to `dir`; returns the number of objects.
pub fn generate(dir: &Path, pods: usize) -> Result<usize> {
    fs::create_dir_all(dir)?;
    let deployments = pods.div_ceil(REPLICAS);
    let node_count = NODES.max(pods / 100);
    let namespace_count = NAMESPACES.max(pods / 500);
    let mut nodes = Vec::new();
    for n in 0..node_count {
        nodes.push(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": format!("node-{n:03}"), "uid": format!("node-uid-{n}"), "labels": {"kubernetes.io/hostname": format!("node-{n:03}")}},
            "status": {"allocatable": {"cpu": "16", "memory": "64Gi", "pods": "110"}, "capacity": {"cpu": "16", "memory": "64Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "lastHeartbeatTime": NOW, "lastTransitionTime": CREATED}]},
        }));
    }
    let namespaces: Vec<Value> = (0..namespace_count)
        .map(|n| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("team-{n:02}")}, "status": {"phase": "Active"}}))
        .collect();
    let mut deployment_list = Vec::new();
    let mut replica_sets = Vec::new();
    let mut pod_list = Vec::new();
    let mut services = Vec::new();
    let mut slices = Vec::new();
    let mut config_maps = Vec::new();
    let mut events = Vec::new();
    let mut pod_index = 0;
    for d in 0..deployments {
        let failure = failure_of(d);
        let namespace = format!("team-{:02}", d % namespace_count);
        let name = format!("svc-{d:04}");
        let deployment_uid = format!("dep-uid-{d}");
        let rs_name = format!("{name}-7c9f6d5b8{}", d % 10);
        let rs_uid = format!("rs-uid-{d}");
        let image = if failure == Failure::BadImage {
            "ghcr.io/example/app:2.0.99"
        } else {
            "ghcr.io/example/app:2.0.1"
        };
        let memory_limit = if failure == Failure::Oom {
            "64Mi"
        } else {
            "512Mi"
        };
        let memory_request = if failure == Failure::Unschedulable {
            "96Gi"
        } else {
            "128Mi"
        };
        let timeout = if failure == Failure::Unready { 1 } else { 3 };
        let container = json!({
            "name": "app", "image": image,
            "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
            "env": [{"name": "LOG_LEVEL", "value": "info"}],
            "resources": {"requests": {"cpu": "100m", "memory": memory_request}, "limits": {"memory": memory_limit}},
            "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 5, "timeoutSeconds": timeout},
        });
        let labels = json!({"app": name});
        let template = json!({"metadata": {"labels": labels}, "spec": {"containers": [container]}});
        let replicas = REPLICAS.min(pods - pod_index);
        let healthy = failure == Failure::Healthy;
        deployment_list.push(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "uid": deployment_uid, "creationTimestamp": CREATED, "annotations": {"deployment.kubernetes.io/revision": "1"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": template},
            "status": if healthy {
                json!({"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas, "updatedReplicas": replicas,
                    "conditions": [{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "lastUpdateTime": CREATED}]})
            } else {
                json!({"replicas": replicas, "updatedReplicas": replicas, "unavailableReplicas": replicas,
                    "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": format!("ReplicaSet \"{rs_name}\" has timed out progressing."), "lastUpdateTime": CREATED}]})
            },
        }));
        replica_sets.push(json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": rs_name, "namespace": namespace, "uid": rs_uid, "creationTimestamp": CREATED,
                "annotations": {"deployment.kubernetes.io/revision": "1"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": deployment_uid, "controller": true}]},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": template},
            "status": {"replicas": replicas, "readyReplicas": if healthy { replicas } else { 0 }},
        }));
        config_maps.push(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("{name}-config"), "namespace": namespace},
            "data": {"DATABASE_URL": format!("postgres://{name}@db.{namespace}.svc:5432/app")},
        }));
        let mut endpoints = Vec::new();
        for r in 0..replicas {
            let pod_name = format!("{rs_name}-p{r:03}");
            let pod_uid = format!("pod-uid-{pod_index}");
            let node = format!("node-{:03}", pod_index % node_count);
            let ip = format!(
                "10.{}.{}.{}",
                pod_index / 65536,
                (pod_index / 256) % 256,
                pod_index % 256
            );
            let (phase, state, last_state, ready, restarts) = match failure {
                Failure::Healthy => (
                    "Running",
                    json!({"running": {"startedAt": CREATED}}),
                    Value::Null,
                    true,
                    0,
                ),
                Failure::Unready => (
                    "Running",
                    json!({"running": {"startedAt": CREATED}}),
                    Value::Null,
                    false,
                    0,
                ),
                Failure::MissingEnv => (
                    "Running",
                    json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container"}}),
                    json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": "2026-03-14T09:25:00Z", "finishedAt": "2026-03-14T09:25:01Z"}}),
                    false,
                    12,
                ),
                Failure::Oom => (
                    "Running",
                    json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container"}}),
                    json!({"terminated": {"exitCode": 137, "reason": "OOMKilled", "startedAt": "2026-03-14T09:25:00Z", "finishedAt": "2026-03-14T09:25:04Z"}}),
                    false,
                    12,
                ),
                Failure::BadImage => (
                    "Pending",
                    json!({"waiting": {"reason": "ImagePullBackOff", "message": format!("Back-off pulling image \"{image}\"")}}),
                    Value::Null,
                    false,
                    0,
                ),
                Failure::Unschedulable => ("Pending", Value::Null, Value::Null, false, 0),
            };
            let mut status = json!({"phase": phase, "startTime": CREATED, "qosClass": "Burstable"});
            if failure == Failure::Unschedulable {
                status["conditions"] = json!([{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": "0/100 nodes are available: 100 Insufficient memory. preemption: 0/100 nodes are available: 100 No preemption victims found for incoming pod.", "lastTransitionTime": CREATED}]);
            } else {
                status["podIP"] = json!(ip);
                status["hostIP"] = json!(format!(
                    "192.168.{}.{}",
                    pod_index % node_count / 256,
                    pod_index % node_count % 256
                ));
                status["conditions"] = json!([
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": CREATED},
                    {"type": "Ready", "status": if ready { "True" } else { "False" }, "lastTransitionTime": CREATED},
                ]);
                let mut container_status = json!({"name": "app", "image": image, "imageID": "", "ready": ready, "restartCount": restarts, "state": state});
                if !last_state.is_null() {
                    container_status["lastState"] = last_state;
                }
                status["containerStatuses"] = json!([container_status]);
            }
            let mut spec = template["spec"].clone();
            if failure != Failure::Unschedulable {
                spec["nodeName"] = json!(node);
            }
            pod_list.push(json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": pod_name, "namespace": namespace, "uid": pod_uid, "creationTimestamp": CREATED,
                    "labels": {"app": name, "pod-template-hash": "7c9f6d5b8"},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs_name, "uid": rs_uid, "controller": true}]},
                "spec": spec,
                "status": status,
            }));
            let event = |reason: &str, message: String, count: u32| {
                json!({"apiVersion": "v1", "kind": "Event",
                    "metadata": {"name": format!("{pod_name}.{reason}"), "namespace": namespace},
                    "involvedObject": {"kind": "Pod", "name": pod_name, "namespace": namespace, "uid": pod_uid},
                    "reason": reason, "message": message, "type": "Warning", "count": count,
                    "firstTimestamp": CREATED, "lastTimestamp": NOW, "source": {"component": "kubelet"}})
            };
            match failure {
                Failure::MissingEnv | Failure::Oom => {
                    events.push(event("BackOff", format!("Back-off restarting failed container app in pod {pod_name}_{namespace}"), 140));
                }
                Failure::BadImage => events.push(event(
                    "Failed",
                    format!("Failed to pull image \"{image}\": rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": failed to resolve reference \"{image}\": {image}: not found"),
                    9,
                )),
                Failure::Unready => events.push(event(
                    "Unhealthy",
                    format!("Readiness probe failed: Get \"http://{ip}:8080/ready\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"),
                    540,
                )),
                Failure::Unschedulable => events.push(json!({"apiVersion": "v1", "kind": "Event",
                    "metadata": {"name": format!("{pod_name}.FailedScheduling"), "namespace": namespace},
                    "involvedObject": {"kind": "Pod", "name": pod_name, "namespace": namespace, "uid": pod_uid},
                    "reason": "FailedScheduling", "message": "0/100 nodes are available: 100 Insufficient memory. preemption: 0/100 nodes are available: 100 No preemption victims found for incoming pod.",
                    "type": "Warning", "count": 9, "firstTimestamp": CREATED, "lastTimestamp": NOW, "source": {"component": "default-scheduler"}})),
                Failure::Healthy => {}
            }
            if failure == Failure::MissingEnv {
                let log_dir = dir.join("logs").join(&namespace).join(&pod_name);
                fs::create_dir_all(&log_dir)?;
                fs::write(
                    log_dir.join("app.previous.log"),
                    "app 2.0.1 starting\nFATAL: required environment variable DATABASE_URL is not set\n",
                )?;
            }
            if failure != Failure::Unschedulable {
                endpoints.push(json!({"addresses": [ip], "conditions": {"ready": ready}, "targetRef": {"kind": "Pod", "name": pod_name, "namespace": namespace}}));
            }
            pod_index += 1;
        }
        services.push(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
        }));
        slices.push(json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": format!("{name}-x1"), "namespace": namespace, "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        }));
    }
    let mut written = 0;
    written += write_list(dir, "nodes.yaml", &nodes)?;
    written += write_list(dir, "namespaces.yaml", &namespaces)?;
    written += write_list(dir, "deployments.yaml", &deployment_list)?;
    written += write_list(dir, "replicasets.yaml", &replica_sets)?;
    written += write_list(dir, "pods.yaml", &pod_list)?;
    written += write_list(dir, "services.yaml", &services)?;
    written += write_list(dir, "endpointslices.yaml", &slices)?;
    written += write_list(dir, "configmaps.yaml", &config_maps)?;
    written += write_list(dir, "events.yaml", &events)?;
    Ok(written)
}
