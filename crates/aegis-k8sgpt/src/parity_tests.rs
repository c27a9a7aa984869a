//! Table tests of the analyzers K8sGPT has beside the Pod and workload ones, each with the traps
//! its users report: what is broken is found, what is by design is not.

use aegis_cluster::Scope;
use aegis_core::ClusterState;
use serde_json::{Value, json};

use super::*;

/// The newest timestamp in these states: "now".
const NOW: &str = "2026-01-01T00:10:00Z";
/// Ten minutes before "now": past the grace period.
const OLD: &str = "2026-01-01T00:00:00Z";
/// Seconds before "now": within the grace period.
const YOUNG: &str = "2026-01-01T00:09:55Z";

fn state_of(items: Vec<Value>) -> ClusterState {
    let mut sink = aegis_cluster::ObjectSink::new(Scope::all());
    let mut items = items;
    // A node whose heartbeat sets "now".
    items.push(
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "clock"},
        "status": {"conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": NOW}]}}),
    );
    sink.add(json!({"apiVersion": "v1", "kind": "List", "items": items}))
        .expect("valid objects");
    let mut state = sink.state;
    // As a snapshot: the kinds it holds were read, and no others.
    state.read_kinds = Some(sink.kinds);
    state.settle_now();
    state
}

/// `analyzer:reason resource-name` of every finding of `analyzers` (the default ones: `None`).
fn found(state: &ClusterState, analyzers: Option<&[Analyzer]>) -> Vec<String> {
    let mut found: Vec<String> =
        analyze(&state.index(), &AnalyzerConfig::default(), analyzers, None)
            .into_iter()
            .map(|d| {
                format!(
                    "{}:{} {}",
                    d.finding.analyzer, d.finding.reason, d.finding.resource.name
                )
            })
            .collect();
    found.sort();
    found
}

fn owner(kind: &str, name: &str, uid: &str) -> Value {
    json!([{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": uid, "controller": true}])
}

fn pod(name: &str, created: &str, owner: &Value, ready: bool) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "a", "uid": format!("p-{name}"), "creationTimestamp": created,
                     "ownerReferences": owner},
        "spec": {"containers": [{"name": "c", "image": "x:1"}]},
        "status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
            "containerStatuses": [{"name": "c", "image": "x:1", "imageID": "", "ready": ready, "restartCount": 0,
                "state": {"running": {"startedAt": created}}}]}})
}

fn daemon_set(name: &str, desired: i32, ready: i32, pull_secret: Option<&str>) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": "a", "uid": format!("ds-{name}"), "creationTimestamp": OLD},
        "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "c", "image": "x:1"}],
            "imagePullSecrets": pull_secret.map(|s| vec![json!({"name": s})]).unwrap_or_default()}}},
        "status": {"desiredNumberScheduled": desired, "currentNumberScheduled": desired,
                   "numberReady": ready, "numberMisscheduled": 0}})
}

#[test]
fn a_daemon_set_is_reported_when_its_pods_stay_unready_not_while_it_rolls_out() {
    let stuck = state_of(vec![
        daemon_set("agent", 2, 1, None),
        pod(
            "agent-1",
            OLD,
            &owner("DaemonSet", "agent", "ds-agent"),
            true,
        ),
        pod(
            "agent-2",
            OLD,
            &owner("DaemonSet", "agent", "ds-agent"),
            false,
        ),
    ]);
    assert_eq!(
        found(&stuck, None),
        ["DaemonSet:UnavailablePods agent", "Pod:NotReady agent-2"]
    );
    // Mid-rollout: the unready pod was just made.
    let rolling = state_of(vec![
        daemon_set("agent", 2, 1, None),
        pod(
            "agent-1",
            OLD,
            &owner("DaemonSet", "agent", "ds-agent"),
            true,
        ),
        pod(
            "agent-3",
            YOUNG,
            &owner("DaemonSet", "agent", "ds-agent"),
            false,
        ),
    ]);
    assert_eq!(found(&rolling, None), Vec::<String>::new());
}

#[test]
fn a_missing_pull_secret_is_reported_only_where_secrets_were_read() {
    let secret = |name: &str| {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "a"},
            "type": "kubernetes.io/dockerconfigjson"})
    };
    let read = state_of(vec![
        daemon_set("agent", 0, 0, Some("regcred")),
        secret("other"),
    ]);
    assert_eq!(found(&read, None), ["DaemonSet:PullSecretMissing agent"]);
    let present = state_of(vec![
        daemon_set("agent", 0, 0, Some("regcred")),
        secret("regcred"),
    ]);
    assert_eq!(found(&present, None), Vec::<String>::new());
    // Secrets not read (a source not allowed to list them): nothing can be said.
    let unread = state_of(vec![daemon_set("agent", 0, 0, Some("regcred"))]);
    assert_eq!(found(&unread, None), Vec::<String>::new());
}

#[test]
fn cron_schedules_are_checked_as_the_controller_parses_them() {
    for valid in [
        "*/5 * * * *",
        "0 9 * * MON-FRI",
        "30 2 1,15 * ?",
        "0 0 1 jan,jul *",
        "0 0 * * 7",
        "@hourly",
        "@every 1h30m",
        "@every 90s",
    ] {
        assert_eq!(check_schedule(valid), Ok(()), "{valid}");
    }
    for (invalid, why) in [
        ("* * * *", "expected 5 fields"),
        ("60 * * * *", "minute 60 is outside 0-59"),
        ("0 24 * * *", "hour 24 is outside 0-23"),
        ("0 0 0 * *", "day of month 0 is outside 1-31"),
        ("0 0 * 13 *", "month 13 is outside 1-12"),
        ("*/0 * * * *", "step"),
        ("0 5-1 * * *", "runs backwards"),
        ("0 0 * * funday", "not a number"),
        ("@fortnightly", "not a descriptor"),
        ("@every soon", "not a duration"),
    ] {
        let error = check_schedule(invalid).expect_err(invalid);
        assert!(error.contains(why), "{invalid}: {error}");
    }
}

#[test]
fn a_cron_job_is_reported_when_it_cannot_run_not_when_it_is_suspended() {
    let cron = |name: &str, schedule: &str, suspend: bool| {
        json!({"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": name, "namespace": "a", "creationTimestamp": OLD},
            "spec": {"schedule": schedule, "suspend": suspend,
                     "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x:1"}]}}}}}})
    };
    let event = json!({"apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "e1", "namespace": "a"}, "type": "Warning", "reason": "FailedNeedsStart",
        "message": "Cannot determine if job needs to be started: too many missed start times (> 100)",
        "involvedObject": {"kind": "CronJob", "name": "nightly", "namespace": "a"},
        "lastTimestamp": OLD, "count": 3});
    let state = state_of(vec![
        cron("broken", "61 * * * *", false),
        cron("nightly", "0 2 * * *", false),
        cron("paused", "0 3 * * *", true),
        event,
    ]);
    assert_eq!(
        found(&state, None),
        [
            "CronJob:FailedNeedsStart nightly",
            "CronJob:InvalidSchedule broken"
        ]
    );
}

fn deployment(name: &str, requests: &Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "a", "uid": format!("d-{name}"), "creationTimestamp": OLD},
        "spec": {"replicas": 1, "selector": {}, "template": {"spec": {"containers": [
            {"name": "c", "image": "x:1", "resources": {"requests": requests}}]}}},
        "status": {"replicas": 1, "availableReplicas": 1, "readyReplicas": 1}})
}

fn autoscaler(name: &str, target: &str, conditions: &Value) -> Value {
    json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": "a", "creationTimestamp": OLD},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                 "minReplicas": 1, "maxReplicas": 5,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                     "target": {"type": "Utilization", "averageUtilization": 70}}}]},
        "status": {"currentReplicas": 5, "desiredReplicas": 5, "conditions": conditions}})
}

#[test]
fn an_autoscaler_is_reported_when_it_cannot_scale_not_when_it_is_at_its_maximum() {
    let at_max = json!([
        {"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale"},
        {"type": "ScalingActive", "status": "True", "reason": "ValidMetricFound"},
        {"type": "ScalingLimited", "status": "True", "reason": "TooManyReplicas",
         "message": "the desired replica count is more than the maximum replica count"}]);
    let no_metrics = json!([
        {"type": "ScalingActive", "status": "False", "reason": "FailedGetResourceMetric",
         "message": "unable to get metrics for resource cpu"}]);
    let disabled = json!([
        {"type": "ScalingActive", "status": "False", "reason": "ScalingDisabled",
         "message": "scaling is disabled since the replica count of the target is zero"}]);
    let state = state_of(vec![
        // Requests CPU (no limits: an autoscaler needs none).
        deployment("web", &json!({"cpu": "100m"})),
        deployment("bare", &json!({"memory": "64Mi"})),
        deployment("quiet", &json!({"cpu": "100m"})),
        deployment("off", &json!({"cpu": "100m"})),
        autoscaler("web", "web", &at_max),
        autoscaler("bare", "bare", &json!([])),
        autoscaler("quiet", "quiet", &no_metrics),
        autoscaler("off", "off", &disabled),
        autoscaler("ghost", "gone", &json!([])),
    ]);
    assert_eq!(
        found(&state, None),
        [
            "HorizontalPodAutoscaler:MissingRequests bare",
            "HorizontalPodAutoscaler:ScaleTargetMissing ghost",
            "HorizontalPodAutoscaler:ScalingActiveFalse quiet",
        ]
    );
    // The finding belongs to the workload it scales, so it joins that workload's incidents.
    let detections = analyze(&state.index(), &AnalyzerConfig::default(), None, None);
    let bare = detections
        .iter()
        .find(|d| d.finding.resource.name == "bare")
        .expect("found");
    assert_eq!(bare.workload.kind, ResourceKind::Deployment);
}

#[test]
fn config_maps_a_workload_needs_are_reported_and_unused_ones_are_not() {
    let config_map = |name: &str, data: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "a"}, "data": data});
    let workload = |name: &str, env: Value, volumes: Value| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "a", "creationTimestamp": OLD},
            "spec": {"replicas": 1, "selector": {}, "template": {"spec": {
                "containers": [{"name": "c", "image": "x:1", "env": env}], "volumes": volumes}}},
            "status": {"replicas": 1, "availableReplicas": 1, "readyReplicas": 1}})
    };
    let key_ref = |cm: &str, key: &str, optional: bool| json!([{"name": "V", "valueFrom": {"configMapKeyRef": {"name": cm, "key": key, "optional": optional}}}]);
    let state = state_of(vec![
        config_map("settings", json!({"mode": "fast"})),
        // Unused and empty: not failures (K8sGPT reports both).
        config_map("kube-root-ca.crt", json!({"ca.crt": "x"})),
        config_map("leader-lock", json!({})),
        workload("gone", key_ref("deleted", "mode", false), json!([])),
        workload("keyless", key_ref("settings", "speed", false), json!([])),
        workload("fine", key_ref("settings", "mode", false), json!([])),
        workload("maybe", key_ref("deleted", "mode", true), json!([])),
        workload(
            "mounted",
            json!([]),
            json!([{"name": "cfg", "configMap": {"name": "absent"}}]),
        ),
    ]);
    assert_eq!(
        found(&state, None),
        [
            "ConfigMap:ConfigMapKeyMissing keyless",
            "ConfigMap:ConfigMapMissing gone",
            "ConfigMap:ConfigMapMissing mounted",
        ]
    );
    // ConfigMaps not read: their absence proves nothing.
    let unread = state_of(vec![workload(
        "gone",
        key_ref("deleted", "mode", false),
        json!([]),
    )]);
    assert_eq!(found(&unread, None), Vec::<String>::new());
}

#[test]
fn two_default_storage_classes_are_reported_and_local_volumes_are_not() {
    let class = |name: &str, default: bool, provisioner: &str| {
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": name, "annotations": if default {
                json!({"storageclass.kubernetes.io/is-default-class": "true"}) } else { json!({}) }},
            "provisioner": provisioner})
    };
    let one = state_of(vec![
        class("standard", true, "rancher.io/local-path"),
        class("local", false, "kubernetes.io/no-provisioner"),
    ]);
    assert_eq!(found(&one, None), Vec::<String>::new());
    let two = state_of(vec![
        class("standard", true, "rancher.io/local-path"),
        class("fast", true, "ebs.csi.aws.com"),
    ]);
    assert_eq!(
        found(&two, None),
        [
            "Storage:MultipleDefaultClasses fast",
            "Storage:MultipleDefaultClasses standard"
        ]
    );
}

#[test]
fn kubelet_pressure_is_reported_and_node_problem_detector_conditions_are_not() {
    let node = |name: &str, conditions: Value| json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "status": {"conditions": conditions}});
    let state = state_of(vec![
        node(
            "full",
            json!([
            {"type": "DiskPressure", "status": "True", "reason": "KubeletHasDiskPressure", "message": "kubelet has disk pressure"},
            {"type": "Ready", "status": "True"}]),
        ),
        node(
            "npd",
            json!([
            {"type": "KernelDeadlock", "status": "True", "reason": "DockerHung"},
            {"type": "FrequentKubeletRestart", "status": "True"},
            {"type": "MemoryPressure", "status": "False"},
            {"type": "Ready", "status": "True"}]),
        ),
    ]);
    assert_eq!(found(&state, None), ["Node:DiskPressure full"]);
}

#[test]
fn a_gated_pod_is_reported_once_past_the_grace_period() {
    let gated = |name: &str, created: &str| {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "a", "creationTimestamp": created},
            "spec": {"schedulingGates": [{"name": "kueue.x-k8s.io/admission"}], "containers": [{"name": "c", "image": "x:1"}]},
            "status": {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated", "message": "Scheduling is blocked due to non-empty scheduling gates"}]}})
    };
    let state = state_of(vec![gated("waiting", OLD), gated("new", YOUNG)]);
    let detections = analyze(&state.index(), &AnalyzerConfig::default(), None, None);
    assert_eq!(detections.len(), 1, "{detections:?}");
    assert_eq!(detections[0].finding.reason, "SchedulingGated");
    assert!(
        detections[0]
            .finding
            .message
            .contains("kueue.x-k8s.io/admission")
    );
}

#[test]
fn an_oom_kill_is_reported_at_the_first_kill_not_only_in_crash_loop() {
    let state = state_of(vec![json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "once", "namespace": "a", "creationTimestamp": OLD},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x:1"}]},
        "status": {"phase": "Failed", "containerStatuses": [{"name": "c", "image": "x:1", "imageID": "",
            "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}})]);
    let state_running = state_of(vec![json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "restarted", "namespace": "a", "creationTimestamp": OLD},
        "spec": {"containers": [{"name": "c", "image": "x:1"}]},
        "status": {"phase": "Running", "containerStatuses": [{"name": "c", "image": "x:1", "imageID": "",
            "ready": true, "restartCount": 1, "state": {"running": {"startedAt": OLD}},
            "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}})]);
    assert_eq!(found(&state_running, None), ["Pod:OOMKilled restarted"]);
    // A pod that failed (restartPolicy Never) is reported for its failure, with the kill.
    let detections = analyze(&state.index(), &AnalyzerConfig::default(), None, None);
    assert_eq!(detections.len(), 1);
}

#[test]
fn a_stateful_set_with_no_ready_replica_is_not_healthy() {
    let state = state_of(vec![json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "a", "creationTimestamp": OLD},
        "spec": {"replicas": 3, "selector": {}, "serviceName": "", "template": {}},
        "status": {"replicas": 3, "readyReplicas": 0, "availableReplicas": 0}})]);
    assert_eq!(found(&state, None), ["StatefulSet:UnavailableReplicas db"]);
}

#[test]
fn events_are_matched_to_their_object_by_kind_as_well_as_name() {
    let state = state_of(vec![
        pod("web", OLD, &json!([]), false),
        json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e", "namespace": "a"},
            "type": "Warning", "reason": "ProgressDeadlineExceeded", "message": "about the Deployment",
            "involvedObject": {"kind": "Deployment", "name": "web", "namespace": "a"}, "lastTimestamp": OLD}),
    ]);
    let detections = analyze(&state.index(), &AnalyzerConfig::default(), None, None);
    let web = detections
        .iter()
        .find(|d| d.finding.resource.name == "web")
        .expect("the unready pod");
    assert!(
        web.evidence
            .iter()
            .all(|e| !e.excerpt.contains("about the Deployment")),
        "{:?}",
        web.evidence
    );
}

#[test]
fn security_and_logs_are_analyzed_only_when_asked_for() {
    let state = state_of(vec![
        json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "root", "namespace": "a", "creationTimestamp": OLD},
        "spec": {"containers": [{"name": "c", "image": "x:1", "securityContext": {"privileged": true}}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "c", "image": "x:1", "imageID": "", "ready": true, "restartCount": 0,
                "state": {"running": {"startedAt": OLD}}}]}}),
        json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "careful", "namespace": "a", "creationTimestamp": OLD},
        "spec": {"serviceAccountName": "app", "automountServiceAccountToken": false,
                 "containers": [{"name": "c", "image": "x:1"}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "c", "image": "x:1", "imageID": "", "ready": true, "restartCount": 0,
                "state": {"running": {"startedAt": OLD}}}]}}),
    ]);
    assert_eq!(found(&state, None), Vec::<String>::new());
    assert_eq!(
        found(&state, Some(&[Analyzer::Security])),
        [
            "Security:DefaultServiceAccount root",
            "Security:Privileged root"
        ]
    );
}

#[test]
fn error_lines_are_errors_and_lines_that_mention_errors_are_not() {
    for line in [
        "level=error msg=\"cannot connect to db\"",
        r#"{"level":"error","msg":"boom"}"#,
        "2026-01-01 ERROR [main] connection refused",
        "[FATAL] out of disk",
        "panic: runtime error: index out of range",
        "Traceback (most recent call last):",
        "java.lang.IllegalStateException: boom",
        "Exception in thread \"main\" java.lang.Error",
        "Unhandled promise rejection: fetch failed",
    ] {
        assert!(is_error_line(line), "{line}");
    }
    for line in [
        "processed 12 items, 0 errors",
        "failover complete",
        "jobs failed=0 succeeded=12",
        "level=info msg=\"no error\"",
        "INFO retrying after an error",
        "error_count: 0",
    ] {
        assert!(!is_error_line(line), "{line}");
    }
}

#[test]
fn analyzers_are_named_as_k8sgpt_names_them_or_by_their_kind() {
    for (name, analyzer) in [
        ("PersistentVolumeClaim", Analyzer::PersistentVolumeClaim),
        ("pvc", Analyzer::PersistentVolumeClaim),
        ("HorizontalPodAutoscaler", Analyzer::HorizontalPodAutoscaler),
        ("hpa", Analyzer::HorizontalPodAutoscaler),
        ("storage", Analyzer::Storage),
        ("SECURITY", Analyzer::Security),
        ("Log", Analyzer::Log),
        ("cronjobs", Analyzer::CronJob),
        ("cm", Analyzer::ConfigMap),
        ("httproutes", Analyzer::HTTPRoute),
        ("gtw", Analyzer::Gateway),
        ("GatewayClass", Analyzer::GatewayClass),
        ("customresource", Analyzer::CustomResource),
    ] {
        assert_eq!(Analyzer::parse(name), Some(analyzer), "{name}");
    }
    assert_eq!(Analyzer::parse("Secret"), None);
    assert_eq!(Analyzer::parse("nonsense"), None);
    assert!(Analyzer::ALL.iter().filter(|a| a.by_default()).count() == 22);
}

fn budget(name: &str, selector: &Value, rule: &Value, status: &Value) -> Value {
    let mut spec = json!({"selector": selector});
    if let (Some(spec), Some(rule)) = (spec.as_object_mut(), rule.as_object()) {
        spec.extend(rule.clone());
    }
    json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": "a", "creationTimestamp": OLD},
        "spec": spec, "status": status})
}

#[test]
fn a_disruption_budget_is_reported_when_it_protects_nothing_or_blocks_every_drain() {
    let labelled = |name: &str, app: &str, ready: bool| {
        let mut pod = pod(name, OLD, &json!([]), ready);
        pod["metadata"]["labels"] = json!({"app": app});
        pod
    };
    let healthy = json!({"expectedPods": 2, "currentHealthy": 2, "desiredHealthy": 2, "disruptionsAllowed": 0});
    let allows = json!({"expectedPods": 2, "currentHealthy": 2, "desiredHealthy": 1, "disruptionsAllowed": 1});
    let sick = json!({"expectedPods": 2, "currentHealthy": 1, "desiredHealthy": 2, "disruptionsAllowed": 0});
    let state = state_of(vec![
        labelled("web-1", "web", true),
        labelled("web-2", "web", true),
        labelled("db-1", "db", true),
        labelled("db-2", "db", false),
        // minAvailable equal to the replicas: no drain can ever evict one.
        budget(
            "web-strict",
            &json!({"matchLabels": {"app": "web"}}),
            &json!({"minAvailable": 2}),
            &healthy,
        ),
        budget(
            "web-fine",
            &json!({"matchLabels": {"app": "web"}}),
            &json!({"minAvailable": 1}),
            &allows,
        ),
        // No disruption allowed because a pod is unhealthy: that pod is the incident.
        budget(
            "db",
            &json!({"matchLabels": {"app": "db"}}),
            &json!({"maxUnavailable": 0}),
            &sick,
        ),
        budget(
            "typo",
            &json!({"matchLabels": {"app": "wbe"}}),
            &json!({"minAvailable": 1}),
            &json!({"expectedPods": 0, "currentHealthy": 0, "desiredHealthy": 1, "disruptionsAllowed": 0}),
        ),
        // matchExpressions are honoured (K8sGPT ignores them).
        budget(
            "expr",
            &json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["db"]}]}),
            &json!({"maxUnavailable": 1}),
            &allows,
        ),
    ]);
    assert_eq!(
        found(&state, Some(&[Analyzer::PodDisruptionBudget])),
        [
            "PodDisruptionBudget:BlocksEviction web-strict",
            "PodDisruptionBudget:SelectsNoPods typo",
        ]
    );
}

#[test]
fn a_network_policy_selecting_nothing_is_reported_and_default_deny_is_not() {
    let policy = |name: &str, selector: &Value| {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": "a"},
            "spec": {"podSelector": selector, "policyTypes": ["Ingress"]}})
    };
    let mut web = pod("web-1", OLD, &json!([]), true);
    web["metadata"]["labels"] = json!({"app": "web"});
    // A workload scaled to zero still has pods to protect once it scales up.
    let idle = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "batch", "namespace": "a", "creationTimestamp": OLD},
        "spec": {"replicas": 0, "selector": {}, "template": {"metadata": {"labels": {"app": "batch"}},
            "spec": {"containers": [{"name": "c", "image": "x:1"}]}}}, "status": {}});
    let state = state_of(vec![
        web,
        idle,
        policy("default-deny", &json!({})),
        policy("web-only", &json!({"matchLabels": {"app": "web"}})),
        policy("batch-only", &json!({"matchLabels": {"app": "batch"}})),
        policy("stale", &json!({"matchLabels": {"app": "legacy"}})),
    ]);
    assert_eq!(
        found(&state, Some(&[Analyzer::NetworkPolicy])),
        ["NetworkPolicy:SelectsNoPods stale"]
    );
}

#[test]
fn a_webhook_is_reported_when_its_service_is_missing_or_has_no_ready_endpoint() {
    let webhooks = |kind: &str, hooks: &[(&str, &str, &str)]| {
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
            "metadata": {"name": format!("{}-config", kind.to_ascii_lowercase())},
            "webhooks": hooks.iter().map(|(name, service, policy)| json!({
                "name": name, "failurePolicy": policy, "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "clientConfig": {"service": {"namespace": "sys", "name": service}}})).collect::<Vec<_>>()})
    };
    let service = |name: &str| {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "sys"},
            "spec": {"selector": {"app": name}}})
    };
    let slice = |service: &str, ready: bool| {
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": format!("{service}-x"), "namespace": "sys",
                         "labels": {"kubernetes.io/service-name": service}},
            "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": ready}}]})
    };
    let state = state_of(vec![
        service("policy-ok"),
        slice("policy-ok", true),
        service("policy-down"),
        slice("policy-down", false),
        webhooks(
            "ValidatingWebhookConfiguration",
            &[
                ("ok.example.com", "policy-ok", "Fail"),
                ("down.example.com", "policy-down", "Fail"),
            ],
        ),
        webhooks(
            "MutatingWebhookConfiguration",
            &[("gone.example.com", "injector", "Ignore")],
        ),
    ]);
    assert_eq!(
        found(&state, None),
        [
            "MutatingWebhookConfiguration:ServiceMissing mutatingwebhookconfiguration-config",
            "ValidatingWebhookConfiguration:NoReadyEndpoints validatingwebhookconfiguration-config",
        ]
    );
    // A view that holds nothing of the Service's namespace cannot say the Service is missing.
    let elsewhere = state_of(vec![
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x", "namespace": "other"}}),
        webhooks(
            "MutatingWebhookConfiguration",
            &[("gone.example.com", "injector", "Fail")],
        ),
    ]);
    assert_eq!(found(&elsewhere, None), Vec::<String>::new());
}

#[test]
fn k8sgpt_s_findings_are_attributed_to_the_workload_aegis_names_for_the_same_object() {
    use crate::result::attributed;
    let labelled = |mut pod: Value, app: &str| {
        pod["metadata"]["labels"] = json!({"app": app});
        pod
    };
    let state = state_of(vec![
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "a", "uid": "d-web", "creationTimestamp": OLD},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"spec": {"containers": []}}}}),
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-5d8f", "namespace": "a", "uid": "rs-web", "creationTimestamp": OLD,
                         "ownerReferences": owner("Deployment", "web", "d-web")},
            "spec": {"selector": {"matchLabels": {"app": "web"}}}}),
        labelled(
            pod(
                "web-5d8f-a",
                OLD,
                &owner("ReplicaSet", "web-5d8f", "rs-web"),
                false,
            ),
            "web",
        ),
        labelled(
            pod(
                "web-5d8f-b",
                OLD,
                &owner("ReplicaSet", "web-5d8f", "rs-web"),
                true,
            ),
            "web",
        ),
        labelled(pod("cache-0", OLD, &json!([]), true), "cache"),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "a"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "cache", "namespace": "a"},
            "spec": {"selector": {"app": "cache"}, "ports": [{"port": 6379}]}}),
    ]);
    let index = state.index();
    let web = ResourceRef::new(ResourceKind::Deployment, Some("a"), "web");
    let of = |kind, name: &str| attributed(&index, &ResourceRef::new(kind, Some("a"), name));
    assert_eq!(of(ResourceKind::Pod, "web-5d8f-a"), Some(web.clone()));
    assert_eq!(of(ResourceKind::ReplicaSet, "web-5d8f"), Some(web.clone()));
    // A Service missing ready endpoints: the workload of its unready pods, as the Service
    // analyzer says.
    assert_eq!(of(ResourceKind::Service, "web"), Some(web));
    // Every selected pod ready, a bare pod, an object not in the state, a kind that is its own
    // workload: K8sGPT's own attribution stands.
    assert_eq!(of(ResourceKind::Service, "cache"), None);
    assert_eq!(of(ResourceKind::Pod, "cache-0"), None);
    assert_eq!(of(ResourceKind::Pod, "gone-7f9c-x"), None);
    assert_eq!(of(ResourceKind::Deployment, "web"), None);
}

fn gateway_api(
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    created: &str,
    spec: &Value,
    status: &Value,
) -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "generation": 2, "creationTimestamp": created},
        "spec": spec, "status": status})
}

fn conditions(list: &[(&str, &str, i64)]) -> Value {
    json!({"conditions": list.iter().map(|(type_, status, observed)| json!({
        "type": type_, "status": status, "reason": "Test", "message": "said by the controller",
        "observedGeneration": observed})).collect::<Vec<_>>()})
}

fn route(namespace: &str, name: &str, parents: &Value, backends: &Value) -> Value {
    gateway_api(
        "HTTPRoute",
        Some(namespace),
        name,
        OLD,
        &json!({"parentRefs": parents, "rules": [{"backendRefs": backends}]}),
        &json!({}),
    )
}

#[test]
fn gateway_api_objects_are_reported_when_they_cannot_route_not_while_a_controller_catches_up() {
    let none = json!([]);
    let to_gateway = |name: &str| json!([{"name": name, "namespace": "a"}]);
    let class = |name: &str, created: &str, list: &[(&str, &str, i64)]| {
        gateway_api(
            "GatewayClass",
            None,
            name,
            created,
            &json!({"controllerName": "example.com/gw"}),
            &conditions(list),
        )
    };
    let listener = |name: &str, allowed: Value| json!({"name": name, "port": 80, "protocol": "HTTP", "allowedRoutes": {"namespaces": allowed}});
    let programmed = conditions(&[("Accepted", "True", 2), ("Programmed", "True", 2)]);
    let state = state_of(vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "b", "labels": {"shared": "true"}}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "c"}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc", "namespace": "a"}, "spec": {"ports": [{"port": 80}]}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc", "namespace": "b"}, "spec": {"ports": [{"port": 80}]}}),
        class("gc", OLD, &[("Accepted", "True", 2)]),
        // Just made: no controller has looked yet.
        class("gc-young", YOUNG, &[("Accepted", "Unknown", 2)]),
        // Long made and still unclaimed: no controller of that name runs.
        class("gc-orphan", OLD, &[("Accepted", "Unknown", 2)]),
        // Judged by Accepted wherever it is, not by the first condition.
        class(
            "gc-first",
            OLD,
            &[("SupportedVersion", "False", 2), ("Accepted", "True", 2)],
        ),
        class(
            "gc-late",
            OLD,
            &[("SupportedVersion", "True", 2), ("Accepted", "False", 2)],
        ),
        gateway_api(
            "Gateway",
            Some("a"),
            "gw",
            OLD,
            &json!({"gatewayClassName": "gc", "listeners": [listener("same", json!({"from": "Same"})), listener("all", json!({"from": "All"}))]}),
            &programmed,
        ),
        gateway_api(
            "Gateway",
            Some("a"),
            "gw-sel",
            OLD,
            &json!({"gatewayClassName": "gc", "listeners": [listener("sel", json!({"from": "Selector", "selector": {"matchLabels": {"shared": "true"}}}))]}),
            &programmed,
        ),
        gateway_api(
            "Gateway",
            Some("a"),
            "gw-no-class",
            OLD,
            &json!({"gatewayClassName": "nope"}),
            &json!({}),
        ),
        // A condition computed for the previous generation says nothing of this one.
        gateway_api(
            "Gateway",
            Some("a"),
            "gw-stale",
            OLD,
            &json!({"gatewayClassName": "gc"}),
            &conditions(&[("Accepted", "True", 1), ("Programmed", "False", 1)]),
        ),
        gateway_api(
            "Gateway",
            Some("a"),
            "gw-down",
            OLD,
            &json!({"gatewayClassName": "gc"}),
            &conditions(&[("Accepted", "True", 2), ("Programmed", "False", 2)]),
        ),
        route(
            "a",
            "r-ok",
            &to_gateway("gw"),
            &json!([{"name": "svc", "port": 80}]),
        ),
        route("a", "r-no-gateway", &to_gateway("gone"), &none),
        // A GAMMA route's parent is a Service, not a missing Gateway.
        route(
            "a",
            "r-gamma",
            &json!([{"kind": "Service", "group": "", "name": "svc"}]),
            &none,
        ),
        route(
            "a",
            "r-no-backend",
            &to_gateway("gw"),
            &json!([{"name": "gone", "port": 80}]),
        ),
        route(
            "a",
            "r-wrong-port",
            &to_gateway("gw"),
            &json!([{"name": "svc", "port": 8080}]),
        ),
        // A backend in another namespace (a ReferenceGrant allows it) is looked up there.
        route(
            "a",
            "r-cross",
            &to_gateway("gw"),
            &json!([{"name": "svc", "namespace": "b", "port": 80}]),
        ),
        route(
            "a",
            "r-cross-missing",
            &to_gateway("gw"),
            &json!([{"name": "gone", "namespace": "b", "port": 80}]),
        ),
        // A namespace of which the state holds nothing (a view of one namespace): unknown.
        route(
            "a",
            "r-elsewhere",
            &json!([{"name": "gw", "namespace": "z"}]),
            &json!([{"name": "svc", "namespace": "z", "port": 80}]),
        ),
        route(
            "a",
            "r-not-a-service",
            &to_gateway("gw"),
            &json!([{"kind": "ServiceImport", "group": "multicluster.x-k8s.io", "name": "far"}]),
        ),
        // Listeners are matched by sectionName: the one allowing all namespaces admits it.
        route(
            "b",
            "r-section-all",
            &json!([{"name": "gw", "namespace": "a", "sectionName": "all"}]),
            &none,
        ),
        route(
            "b",
            "r-section-same",
            &json!([{"name": "gw", "namespace": "a", "sectionName": "same"}]),
            &none,
        ),
        // A namespace selector is matched against the route's namespace's labels.
        route(
            "b",
            "r-selected",
            &json!([{"name": "gw-sel", "namespace": "a"}]),
            &none,
        ),
        route(
            "c",
            "r-not-selected",
            &json!([{"name": "gw-sel", "namespace": "a"}]),
            &none,
        ),
        gateway_api(
            "HTTPRoute",
            Some("a"),
            "r-rejected",
            OLD,
            &json!({"parentRefs": to_gateway("gw")}),
            &json!({"parents": [{"parentRef": {"name": "gw"}, "controllerName": "example.com/gw",
                "conditions": [{"type": "Accepted", "status": "True", "observedGeneration": 2},
                               {"type": "ResolvedRefs", "status": "False", "reason": "BackendNotFound", "observedGeneration": 2}]}]}),
        ),
    ]);
    assert_eq!(
        found(&state, None),
        [
            "Gateway:GatewayClassMissing gw-no-class",
            "Gateway:NotProgrammed gw-down",
            "GatewayClass:NotAccepted gc-late",
            "GatewayClass:NotAccepted gc-orphan",
            "HTTPRoute:BackendPortMissing r-wrong-port",
            "HTTPRoute:BackendServiceMissing r-cross-missing",
            "HTTPRoute:BackendServiceMissing r-no-backend",
            "HTTPRoute:GatewayMissing r-no-gateway",
            "HTTPRoute:NotAllowedByListener r-not-selected",
            "HTTPRoute:NotAllowedByListener r-section-same",
            "HTTPRoute:RefsNotResolved r-rejected",
        ]
    );

    // Routes alone (a snapshot without Gateways or Services): nothing is called missing.
    let routes_only = state_of(vec![route(
        "a",
        "r-no-gateway",
        &to_gateway("gone"),
        &json!([{"name": "gone", "port": 80}]),
    )]);
    assert_eq!(found(&routes_only, None), Vec::<String>::new());
}

#[test]
fn a_custom_resource_whose_conditions_say_it_does_not_work_is_reported() {
    let object = |name: &str, created: &str, generation: i64, list: &[(&str, &str, i64)]| {
        json!({"apiVersion": "db.example.com/v1", "kind": "Database",
            "metadata": {"name": name, "namespace": "a", "generation": generation, "creationTimestamp": created},
            "spec": {"size": "1Gi"}, "status": conditions(list)})
    };
    let state = state_of(vec![
        object("down", OLD, 1, &[("Ready", "False", 1)]),
        object("up", OLD, 1, &[("Ready", "True", 1)]),
        object(
            "degraded",
            OLD,
            1,
            &[("Ready", "True", 1), ("Degraded", "True", 1)],
        ),
        object("not-degraded", OLD, 1, &[("Degraded", "False", 1)]),
        // Changed since the controller last looked: its Ready=False is about the old spec.
        object("stale", OLD, 2, &[("Ready", "False", 1)]),
        object("young", YOUNG, 1, &[("Ready", "Unknown", 1)]),
        object("stuck", OLD, 1, &[("Ready", "Unknown", 1)]),
        // Conditions of other types say nothing of health.
        object("other", OLD, 1, &[("Reconciling", "False", 1)]),
        // A custom resource without conditions is not kept at all.
        json!({"apiVersion": "db.example.com/v1", "kind": "Backup",
            "metadata": {"name": "nightly", "namespace": "a", "creationTimestamp": OLD}, "status": {"phase": "Failed"}}),
    ]);
    assert_eq!(
        found(&state, None),
        [
            "CustomResource:ConditionFailing degraded",
            "CustomResource:ConditionFailing down",
            "CustomResource:ConditionFailing stuck",
        ]
    );
    assert_eq!(state.custom_objects.len(), 8);
    let down = analyze(&state.index(), &AnalyzerConfig::default(), None, None)
        .into_iter()
        .find(|d| d.finding.resource.name == "down")
        .expect("reported");
    assert_eq!(down.finding.resource.kind.as_str(), "Database");
    assert_eq!(down.finding.resource.namespace.as_deref(), Some("a"));
    assert!(
        down.finding
            .message
            .contains("Ready=False, reason Test: said by the controller"),
        "{}",
        down.finding.message
    );
    assert_eq!(
        down.evidence[0].reference,
        "database/a/down: status.conditions"
    );
}
