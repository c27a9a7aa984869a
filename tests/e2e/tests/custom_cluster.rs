//! End-to-end: custom resources on a real control plane. The Gateway API's own CRDs (from the
//! `sigs.k8s.io/gateway-api` Go module) and an operator-style `Database` CRD are installed; AEGIS
//! discovers the kinds from their definitions, reads their objects, and reports the Gateway API
//! objects that cannot route and the Database whose controller says it is not ready — while a
//! GAMMA route (its parent a Service) and a ready Database raise nothing.

use std::path::PathBuf;
use std::process::Command;

use aegis_e2e::binaries::Binaries;
use aegis_e2e::cluster::Cluster;
use aegis_e2e::demo::{analyze, kubectl};
use aegis_e2e::process::poll;
use serde_json::Value;

/// The Gateway API release whose CRDs are installed.
const GATEWAY_API: &str = "sigs.k8s.io/gateway-api@v1.4.1";

/// The standard-channel CRDs of the Gateway API, from its Go module.
fn gateway_api_crds(scratch: &std::path::Path) -> PathBuf {
    std::fs::create_dir_all(scratch).expect("scratch");
    let output = Command::new("go")
        .args(["mod", "download", "-json", GATEWAY_API])
        .current_dir(scratch)
        .env("GOFLAGS", "-mod=mod")
        .output()
        .expect("go runs");
    assert!(
        output.status.success(),
        "go mod download {GATEWAY_API}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let module: Value = serde_json::from_slice(&output.stdout).expect("go's JSON");
    PathBuf::from(module["Dir"].as_str().expect("the module's directory"))
        .join("config/crd/standard")
}

const DATABASE_CRD: &str = r"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: databases.db.example.com
spec:
  group: db.example.com
  scope: Namespaced
  names: {plural: databases, singular: database, kind: Database}
  versions:
    - name: v1
      served: true
      storage: true
      subresources: {status: {}}
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
            status:
              type: object
              properties:
                conditions:
                  type: array
                  items: {type: object, x-kubernetes-preserve-unknown-fields: true}
";

const OBJECTS: &str = r"apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Service
metadata: {name: store, namespace: shop}
spec:
  ports: [{port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: shop}
spec:
  gatewayClassName: missing-class
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: checkout, namespace: shop}
spec:
  parentRefs: [{name: web}]
  rules: [{backendRefs: [{name: checkout, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: mesh, namespace: shop}
spec:
  parentRefs: [{kind: Service, group: '', name: store}]
  rules: [{backendRefs: [{name: store, port: 80}]}]
---
apiVersion: db.example.com/v1
kind: Database
metadata: {name: orders, namespace: shop}
spec: {size: 1Gi}
---
apiVersion: db.example.com/v1
kind: Database
metadata: {name: catalog, namespace: shop}
spec: {size: 1Gi}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resources_are_discovered_from_their_definitions_and_judged_by_their_status() {
    let binaries = Binaries::ensure().expect("the control plane builds");
    let dir = tempfile::tempdir().expect("tempdir");
    let crds = gateway_api_crds(&dir.path().join("go"));
    let cluster = Cluster::start(&binaries, &dir.path().join("cluster"))
        .await
        .expect("the control plane starts");
    // The Gateway API's CRDs are too large for client-side apply's annotation.
    kubectl(
        &binaries,
        &cluster,
        &["create", "-f", crds.to_str().expect("a UTF-8 path")],
    );
    let database = dir.path().join("database-crd.yaml");
    std::fs::write(&database, DATABASE_CRD).expect("write");
    kubectl(
        &binaries,
        &cluster,
        &["create", "-f", database.to_str().expect("a UTF-8 path")],
    );
    kubectl(
        &binaries,
        &cluster,
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/databases.db.example.com",
            "crd/gateways.gateway.networking.k8s.io",
            "crd/httproutes.gateway.networking.k8s.io",
            "crd/gatewayclasses.gateway.networking.k8s.io",
        ],
    );
    let objects = dir.path().join("objects.yaml");
    std::fs::write(&objects, OBJECTS).expect("write");
    // A just-established CRD can take a moment before its objects are accepted.
    let path = objects.to_str().expect("a UTF-8 path").to_owned();
    let kubectl_path = binaries.path("kubectl");
    let kubeconfig = cluster.kubeconfig();
    poll("the objects created", aegis_e2e::demo::DEADLINE, || {
        let (path, kubectl_path, kubeconfig) =
            (path.clone(), kubectl_path.clone(), kubeconfig.clone());
        async move {
            Ok(Command::new(kubectl_path)
                .arg("--kubeconfig")
                .arg(kubeconfig)
                .args(["apply", "-f", &path])
                .output()?
                .status
                .success())
        }
    })
    .await
    .expect("the objects are created");
    for (name, ready) in [("orders", "False"), ("catalog", "True")] {
        let status = format!(
            r#"{{"status": {{"conditions": [{{"type": "Ready", "status": "{ready}", "reason": "Checked", "message": "volume usage checked", "observedGeneration": 1, "lastTransitionTime": "2026-01-01T00:00:00Z"}}]}}}}"#
        );
        kubectl(
            &binaries,
            &cluster,
            &[
                "patch",
                "-n",
                "shop",
                &format!("database/{name}"),
                "--subresource=status",
                "--type=merge",
                "-p",
                &status,
            ],
        );
    }

    let (state, report) = analyze(&cluster).await;
    assert!(state.has_read("HTTPRoute") && state.has_read("Database"));
    assert!(
        !state.has_read("Backup"),
        "a kind no CRD serves is not read"
    );
    let mut filed: Vec<String> = report
        .incidents
        .iter()
        .filter(|i| i.resource.namespace.as_deref() == Some("shop"))
        .map(|i| format!("{} {}/{}", i.rca.category, i.resource.kind, i.resource.name))
        .collect();
    filed.sort();
    assert_eq!(
        filed,
        [
            "custom-resource-unhealthy Database/orders",
            "gateway-misconfigured Gateway/web",
            "gateway-misconfigured HTTPRoute/checkout",
        ],
        "{:#?}",
        report.incidents
    );
    let orders = report
        .incidents
        .iter()
        .find(|i| i.resource.name == "orders")
        .expect("the Database's incident");
    assert!(
        orders
            .rca
            .summary
            .contains("Ready=False, reason Checked: volume usage checked"),
        "{}",
        orders.rca.summary
    );
}
