use serde_json::json;

use super::*;

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web", "namespace": "shop", "uid": "u-1", "resourceVersion": "42", "generation": 7,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"app": "web"},
            "annotations": {"deployment.kubernetes.io/revision": "3", "team": "payments"},
            "ownerReferences": [{"apiVersion": "x/v1", "kind": "Thing", "name": "t", "uid": "u-0"}],
            "managedFields": [{"manager": "kubectl"}],
        },
        "spec": {
            "replicas": 5,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web", "pod-template-hash": "abc"}},
                "spec": {"nodeName": "n1", "serviceAccountName": "web-sa", "containers": [{"name": "web", "image": "nginx:1.27.2"}]},
            },
        },
        "status": {"replicas": 5},
    })
}

#[test]
fn cloning_a_deployment_strips_what_the_cluster_assigned_and_runs_one_replica() {
    let clone = clone_workload(&deployment(), "aegis-shadow-1", Variant::Candidate).expect("clone");
    assert_eq!(clone["metadata"]["name"], "web-candidate");
    assert_eq!(clone["metadata"]["namespace"], "aegis-shadow-1");
    for field in [
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "ownerReferences",
        "managedFields",
    ] {
        assert!(clone["metadata"].get(field).is_none(), "{field} kept");
    }
    assert!(clone.get("status").is_none());
    assert_eq!(
        clone["metadata"]["annotations"],
        json!({"team": "payments"})
    );
    assert_eq!(clone["spec"]["replicas"], 1);
    assert_eq!(
        clone["spec"]["selector"]["matchLabels"],
        json!({"app": "web", VARIANT_LABEL: "candidate"})
    );
    let template = &clone["spec"]["template"];
    assert_eq!(
        template["metadata"]["labels"],
        json!({"app": "web", VARIANT_LABEL: "candidate"})
    );
    assert!(template["spec"].get("nodeName").is_none());
    assert!(template["spec"].get("serviceAccountName").is_none());
    assert_eq!(template["spec"]["automountServiceAccountToken"], false);
    assert_eq!(template["spec"]["containers"][0]["image"], "nginx:1.27.2");
}

#[test]
fn every_kind_clones_to_the_kind_that_runs_it_once() {
    let template = json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}});
    let cases = [
        (
            "apps/v1",
            "StatefulSet",
            json!({"replicas": 3, "serviceName": "x", "selector": {"matchLabels": {"app": "x"}}, "template": template}),
            "StatefulSet",
        ),
        (
            "apps/v1",
            "ReplicaSet",
            json!({"replicas": 3, "selector": {"matchLabels": {"app": "x"}}, "template": template}),
            "ReplicaSet",
        ),
        (
            "apps/v1",
            "DaemonSet",
            json!({"selector": {"matchLabels": {"app": "x"}}, "template": template}),
            "Pod",
        ),
        (
            "batch/v1",
            "Job",
            json!({"selector": {"matchLabels": {"controller-uid": "u"}}, "manualSelector": true, "template": template}),
            "Job",
        ),
        (
            "batch/v1",
            "CronJob",
            json!({"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}),
            "Job",
        ),
    ];
    for (api_version, kind, spec, expected) in cases {
        let source = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x", "namespace": "prod"}, "spec": spec});
        let clone = clone_workload(&source, "s", Variant::Baseline).expect(kind);
        assert_eq!(clone["kind"], expected, "{kind}");
        assert_eq!(clone["metadata"]["name"], "x-baseline", "{kind}");
        if expected == "Job" {
            assert!(clone["spec"].get("selector").is_none(), "{kind}");
            assert!(clone["spec"].get("manualSelector").is_none(), "{kind}");
            assert!(clone["spec"].get("schedule").is_none(), "{kind}");
            assert_eq!(
                clone["spec"]["template"]["metadata"]["labels"][VARIANT_LABEL],
                "baseline"
            );
        }
        if expected == "Pod" {
            assert_eq!(clone["metadata"]["labels"][VARIANT_LABEL], "baseline");
            assert_eq!(clone["spec"]["containers"][0]["image"], "i:1");
        }
        if kind == "StatefulSet" {
            assert_eq!(clone["spec"]["replicas"], 1);
            assert_eq!(clone["spec"]["serviceName"], "x-baseline");
        }
    }
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}});
    assert!(matches!(
        clone_workload(&node, "s", Variant::Baseline),
        Err(CloneError::UnsupportedKind { .. })
    ));
}

#[test]
fn a_service_clone_selects_only_its_variant_and_keeps_no_address_or_node_port() {
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop", "uid": "u"},
        "spec": {"type": "NodePort", "clusterIP": "10.0.0.7", "clusterIPs": ["10.0.0.7"], "selector": {"app": "web"},
                 "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080}], "externalTrafficPolicy": "Local"},
    });
    let clone = clone_service(&service, "s", Variant::Candidate);
    assert_eq!(clone["metadata"]["name"], "web-candidate");
    assert_eq!(clone["spec"]["type"], "ClusterIP");
    assert_eq!(
        clone["spec"]["selector"],
        json!({"app": "web", VARIANT_LABEL: "candidate"})
    );
    for field in ["clusterIP", "clusterIPs", "externalTrafficPolicy"] {
        assert!(clone["spec"].get(field).is_none(), "{field} kept");
    }
    assert!(clone["spec"]["ports"][0].get("nodePort").is_none());
}

#[test]
fn clone_names_fit_in_a_service_name() {
    let long = "a".repeat(70);
    let name = Variant::Candidate.clone_name(&long);
    assert!(name.len() <= 63, "{}", name.len());
    assert!(name.ends_with("-candidate"));
}

#[test]
fn isolation_denies_traffic_but_dns_and_caps_pods_and_node_ports() {
    let objects = isolation_objects("s", 4);
    let kinds: Vec<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "ServiceAccount",
            "NetworkPolicy",
            "ResourceQuota",
            "LimitRange"
        ]
    );
    assert_eq!(objects[0]["automountServiceAccountToken"], false);
    let policy = &objects[1]["spec"];
    assert_eq!(policy["podSelector"], json!({}));
    assert_eq!(policy["policyTypes"], json!(["Ingress", "Egress"]));
    assert!(policy.get("ingress").is_none());
    assert_eq!(policy["egress"][0]["ports"][0]["port"], 53);
    assert_eq!(objects[2]["spec"]["hard"]["pods"], "4");
    assert_eq!(objects[2]["spec"]["hard"]["services.nodeports"], "0");
    for object in &objects {
        assert_eq!(object["metadata"]["namespace"], "s");
    }
    let namespace = shadow_namespace(
        "aegis-shadow-1",
        &[(SOURCE_ANNOTATION, "Deployment shop/web".to_owned())],
    );
    assert_eq!(namespace["metadata"]["labels"][SHADOW_LABEL], "true");
    assert_eq!(
        namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "baseline"
    );
    assert_eq!(
        namespace["metadata"]["annotations"][SOURCE_ANNOTATION],
        "Deployment shop/web"
    );
}

#[test]
fn placeholders_carry_keys_and_never_a_source_value() {
    let keys: BTreeSet<String> = ["password".to_owned(), "user".to_owned()].into();
    let secret = placeholder_secret("db", "s", None, &keys);
    assert_eq!(secret["type"], "Opaque");
    let data = secret["data"].as_object().expect("data");
    assert_eq!(data.len(), 2);
    assert!(data.values().all(|v| v == PLACEHOLDER_VALUE));
    let pull = placeholder_secret(
        "regcred",
        "s",
        Some("kubernetes.io/dockerconfigjson"),
        &BTreeSet::new(),
    );
    assert_eq!(pull["data"][".dockerconfigjson"], "eyJhdXRocyI6e319");
}

#[test]
fn references_are_collected_from_env_env_from_volumes_and_pull_secrets() {
    let spec = json!({
        "containers": [{"name": "c",
            "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm-a", "key": "A"}}},
                    {"name": "B", "valueFrom": {"secretKeyRef": {"name": "sec-b", "key": "B"}}}],
            "envFrom": [{"configMapRef": {"name": "cm-c"}}, {"secretRef": {"name": "sec-d"}}]}],
        "volumes": [{"name": "v", "configMap": {"name": "cm-e"}},
                    {"name": "w", "secret": {"secretName": "sec-f", "items": [{"key": "tls.crt", "path": "c"}]}},
                    {"name": "p", "projected": {"sources": [{"secret": {"name": "sec-g"}}]}}],
        "imagePullSecrets": [{"name": "regcred"}],
    });
    let mut references = References::default();
    references.collect(&spec);
    assert_eq!(
        references.config_maps,
        ["cm-a", "cm-c", "cm-e"].map(str::to_owned).into()
    );
    let secrets: Vec<&str> = references.secrets.keys().map(String::as_str).collect();
    assert_eq!(secrets, ["sec-b", "sec-d", "sec-f", "sec-g"]);
    assert_eq!(references.secrets["sec-b"], ["B".to_owned()].into());
    assert_eq!(references.secrets["sec-f"], ["tls.crt".to_owned()].into());
    assert_eq!(references.pull_secrets, ["regcred".to_owned()].into());
}
