//! K8sGPT's `Result` custom resource (`results.core.k8sgpt.ai`, `core.k8sgpt.ai/v1alpha1`), as
//! the K8sGPT operator writes one per failing object, and the findings AEGIS reads from it.
//!
//! A `Result` lives in the K8sGPT operator's namespace, not its object's: `spec.name` is
//! `<namespace>/<name>` (or `<name>` for cluster-scoped kinds) and `spec.parentObject` the owner
//! K8sGPT resolved, `<Kind>/<name>` in the object's namespace.

use aegis_core::state::{StateIndex, pod_is_ready};
use aegis_core::{Finding, ResourceKind, ResourceRef};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Detection;

/// One failure K8sGPT reported, with the values it masked in the text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Failure {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sensitive: Vec<Sensitive>,
}

/// A value K8sGPT masks before sending a text to its AI backend.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Sensitive {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unmasked: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub masked: String,
}

/// The object a K8sGPT `Result` is about and what is wrong with it.
#[derive(
    CustomResource, Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema,
)]
#[kube(
    group = "core.k8sgpt.ai",
    version = "v1alpha1",
    kind = "Result",
    root = "K8sgptResult",
    plural = "results",
    namespaced,
    status = "ResultStatus"
)]
#[serde(rename_all = "camelCase")]
pub struct ResultSpec {
    #[serde(default)]
    pub backend: String,
    /// The kind of the failing object (`Pod`, `Service`, …).
    pub kind: String,
    /// `<namespace>/<name>` of the failing object, or `<name>` when it is cluster-scoped.
    pub name: String,
    #[serde(default)]
    pub error: Vec<Failure>,
    /// The AI backend's explanation, when K8sGPT ran with one.
    #[serde(default)]
    pub details: String,
    /// The owner K8sGPT resolved: `<Kind>/<name>`, in the object's namespace.
    #[serde(default)]
    pub parent_object: String,
}

/// What the K8sGPT operator records about a `Result`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ResultStatus {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub lifecycle: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub webhook: String,
}

/// Why a `Result` cannot be read as a finding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResultError {
    #[error("K8sGPT Result reports kind \"{0}\", which AEGIS does not analyze")]
    UnknownKind(String),
    #[error("K8sGPT Result names no object (spec.name is empty)")]
    NoName,
}

impl ResultSpec {
    /// The failing object.
    pub fn object(&self) -> Result<ResourceRef, ResultError> {
        let kind = ResourceKind::from_kind(&self.kind)
            .ok_or_else(|| ResultError::UnknownKind(self.kind.clone()))?;
        let (namespace, name) = match self.name.split_once('/') {
            Some((namespace, name)) => (Some(namespace), name),
            None => (None, self.name.as_str()),
        };
        if name.is_empty() {
            return Err(ResultError::NoName);
        }
        let namespace = namespace.filter(|_| kind.is_namespaced());
        Ok(ResourceRef::new(kind, namespace, name))
    }

    /// The workload the failing object belongs to: the parent K8sGPT resolved when AEGIS knows
    /// its kind, else the object itself.
    pub fn workload(&self) -> Result<ResourceRef, ResultError> {
        let object = self.object()?;
        let parent = self
            .parent_object
            .split_once('/')
            .and_then(|(kind, name)| Some((ResourceKind::from_kind(kind)?, name)))
            .filter(|(_, name)| !name.is_empty());
        Ok(match parent {
            Some((kind, name)) => ResourceRef::new(kind, object.namespace.as_deref(), name),
            None => object,
        })
    }

    /// The findings K8sGPT reported, as detections of the analysis (analyzer `K8sGPT`), so
    /// they flow through the same rules as AEGIS's own.
    pub fn detections(&self) -> Result<Vec<Detection>, ResultError> {
        let object = self.object()?;
        let workload = self.workload()?;
        Ok(self
            .error
            .iter()
            .filter(|failure| !failure.text.trim().is_empty())
            .map(|failure| Detection {
                finding: Finding {
                    analyzer: "K8sGPT".to_owned(),
                    reason: format!("K8sGPT{}", self.kind),
                    message: failure.text.trim().to_owned(),
                    resource: object.clone(),
                },
                workload: workload.clone(),
                container: None,
                evidence: Vec::new(),
            })
            .collect())
    }
}

/// What `k8sgpt analyze -o json` prints: one result per failing object, in the same shape as
/// the operator's `Result` spec but with K8sGPT's Go field names for the failures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Report {
    #[serde(default)]
    pub provider: String,
    /// Analyzer errors K8sGPT met (a kind it could not list), as it prints them.
    #[serde(default)]
    pub errors: Option<Vec<String>>,
    /// `OK` or `ProblemDetected`.
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub problems: u64,
    #[serde(default)]
    pub results: Vec<ReportResult>,
}

/// One object of a [`Report`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportResult {
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub error: Vec<ReportFailure>,
    #[serde(default)]
    pub details: String,
    #[serde(default)]
    pub parent_object: String,
}

/// One failure of a [`ReportResult`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ReportFailure {
    #[serde(rename = "Text", default)]
    pub text: String,
    #[serde(rename = "Sensitive", default)]
    pub sensitive: Option<Vec<ReportSensitive>>,
}

/// A value K8sGPT masks, as its report prints it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ReportSensitive {
    #[serde(rename = "Unmasked", default)]
    pub unmasked: String,
    #[serde(rename = "Masked", default)]
    pub masked: String,
}

impl From<&ReportResult> for ResultSpec {
    fn from(result: &ReportResult) -> Self {
        Self {
            backend: String::new(),
            kind: result.kind.clone(),
            name: result.name.clone(),
            error: result
                .error
                .iter()
                .map(|failure| Failure {
                    text: failure.text.clone(),
                    sensitive: failure
                        .sensitive
                        .iter()
                        .flatten()
                        .map(|s| Sensitive {
                            unmasked: s.unmasked.clone(),
                            masked: s.masked.clone(),
                        })
                        .collect(),
                })
                .collect(),
            details: result.details.clone(),
            parent_object: result.parent_object.clone(),
        }
    }
}

/// The findings of a K8sGPT report, and the results that could not be read as findings (with
/// why), so nothing is dropped silently.
#[derive(Debug, Default)]
pub struct ReportFindings {
    pub detections: Vec<Detection>,
    pub skipped: Vec<(String, ResultError)>,
}

impl Report {
    /// Reads `k8sgpt analyze -o json` output; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Its findings as detections of the analysis (analyzer `K8sGPT`).
    pub fn findings(&self) -> ReportFindings {
        let mut out = ReportFindings::default();
        for result in &self.results {
            match ResultSpec::from(result).detections() {
                Ok(detections) => out.detections.extend(detections),
                Err(error) => out
                    .skipped
                    .push((format!("{} {}", result.kind, result.name), error)),
            }
        }
        out
    }
}

/// The workload AEGIS's own analyzers name for a finding about `object`, so that K8sGPT's finding
/// joins their diagnosis: a pod's, ReplicaSet's or Job's controller; for a Service whose selected
/// pods are not all ready, the workload of a pod that is not (as the Service analyzer attributes
/// missing ready endpoints). `None` when the object is not in the state or is its own workload.
pub fn attributed(index: &StateIndex<'_>, object: &ResourceRef) -> Option<ResourceRef> {
    let state = index.state();
    let named = |meta: &ObjectMeta| {
        meta.name.as_deref() == Some(object.name.as_str())
            && meta.namespace.as_deref() == object.namespace.as_deref()
    };
    let workload = match object.kind {
        ResourceKind::Pod => {
            let pod = state.pods.iter().find(|p| named(&p.metadata))?;
            index.workload_of(ResourceKind::Pod, &pod.metadata)
        }
        ResourceKind::ReplicaSet => {
            let set = state.replica_sets.iter().find(|r| named(&r.metadata))?;
            index.workload_of(ResourceKind::ReplicaSet, &set.metadata)
        }
        ResourceKind::Job => {
            let job = state.jobs.iter().find(|j| named(&j.metadata))?;
            index.workload_of(ResourceKind::Job, &job.metadata)
        }
        ResourceKind::Service => {
            let service = state.services.iter().find(|s| named(&s.metadata))?;
            let selector = service.spec.as_ref()?.selector.as_ref()?;
            let pods: Vec<&Pod> = state
                .pods
                .iter()
                .filter(|p| p.metadata.namespace == object.namespace)
                .collect();
            let unready = crate::network::selected_pods(&pods, selector)
                .into_iter()
                .find(|p| !pod_is_ready(p))?;
            index.workload_of(ResourceKind::Pod, &unready.metadata)
        }
        _ => return None,
    };
    (&workload != object).then_some(workload)
}

/// K8sGPT's `Result` CustomResourceDefinition as AEGIS reads it (tests install it on a cluster
/// without the K8sGPT operator).
pub fn result_crd()
-> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    <K8sgptResult as kube::CustomResourceExt>::crd()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: &str, name: &str, parent: &str) -> ResultSpec {
        ResultSpec {
            kind: kind.to_owned(),
            name: name.to_owned(),
            parent_object: parent.to_owned(),
            error: vec![Failure {
                text: "Back-off restarting failed container".to_owned(),
                sensitive: Vec::new(),
            }],
            ..ResultSpec::default()
        }
    }

    #[test]
    fn a_result_names_its_object_and_the_workload_k8sgpt_resolved() {
        let pod = spec("Pod", "shop/web-7d9c-x2x", "Deployment/web");
        assert_eq!(
            pod.object(),
            Ok(ResourceRef::namespaced(
                ResourceKind::Pod,
                "shop",
                "web-7d9c-x2x"
            ))
        );
        assert_eq!(
            pod.workload(),
            Ok(ResourceRef::namespaced(
                ResourceKind::Deployment,
                "shop",
                "web"
            ))
        );
        let detections = pod.detections().expect("readable");
        assert_eq!(detections.len(), 1);
        assert_eq!(detections[0].finding.analyzer, "K8sGPT");
        assert_eq!(detections[0].workload.name, "web");

        let node = spec("Node", "worker-1", "");
        assert_eq!(
            node.workload(),
            Ok(ResourceRef::new(ResourceKind::Node, None, "worker-1"))
        );
        let orphan = spec("Service", "shop/api", "Unknown/x");
        assert_eq!(orphan.workload(), orphan.object());
    }

    #[test]
    fn a_result_about_something_aegis_does_not_know_is_an_error_not_a_guess() {
        assert_eq!(
            spec("ClusterServiceVersion", "x", "").object(),
            Err(ResultError::UnknownKind("ClusterServiceVersion".to_owned()))
        );
        assert_eq!(spec("Pod", "shop/", "").object(), Err(ResultError::NoName));
    }

    #[test]
    fn the_real_k8sgpt_report_of_the_demo_cluster_reads_as_findings() {
        // `k8sgpt analyze -o json` run against the local control plane with the demo incidents
        // (see tests/fixtures/k8sgpt/README.md).
        let text = include_str!("../../../tests/fixtures/k8sgpt/demo-analyze.json");
        let report = Report::parse(text).expect("the real report parses");
        assert_eq!(report.status, "ProblemDetected");
        assert_eq!(report.results.len(), 21);
        let findings = report.findings();
        assert!(findings.skipped.is_empty(), "{:?}", findings.skipped);
        let texts: usize = report.results.iter().map(|r| r.error.len()).sum();
        assert_eq!(
            findings.detections.len(),
            texts,
            "one detection per failure text"
        );
        let trainer = findings
            .detections
            .iter()
            .find(|d| d.finding.resource.name.starts_with("ml-trainer-"))
            .expect("the pending trainer pod");
        assert_eq!(
            trainer.workload,
            ResourceRef::namespaced(ResourceKind::Deployment, "demo", "ml-trainer")
        );
        assert!(trainer.finding.message.contains("Insufficient memory"));
        let masked = report
            .results
            .iter()
            .flat_map(|r| &r.error)
            .flat_map(|f| f.sensitive.iter().flatten())
            .count();
        assert!(masked > 0, "the masked values are read");
    }

    #[test]
    fn a_report_result_of_an_unknown_kind_is_skipped_and_said() {
        let report = Report::parse(
            r#"{"status": "ProblemDetected", "problems": 2, "results": [
                {"kind": "ClusterServiceVersion", "name": "olm/db-operator", "error": [{"Text": "install failed"}], "parentObject": ""},
                {"kind": "Pod", "name": "shop/web-1", "error": [{"Text": "Back-off", "Sensitive": null}], "parentObject": "Deployment/web"}
            ]}"#,
        )
        .expect("parses");
        let findings = report.findings();
        assert_eq!(findings.detections.len(), 1);
        assert_eq!(
            findings.skipped,
            [(
                "ClusterServiceVersion olm/db-operator".to_owned(),
                ResultError::UnknownKind("ClusterServiceVersion".to_owned())
            )]
        );
        let error = Report::parse(r#"{"results": [{"kind": 3}]}"#).expect_err("not a report");
        assert!(error.to_string().contains("invalid type"), "{error}");
    }

    #[test]
    fn the_k8sgpt_operator_s_yaml_decodes() {
        let yaml = serde_json::json!({
            "apiVersion": "core.k8sgpt.ai/v1alpha1",
            "kind": "Result",
            "metadata": {"name": "shopweb7d9cx2x", "namespace": "k8sgpt-operator-system"},
            "spec": {
                "backend": "openai", "kind": "Pod", "name": "shop/web-7d9c-x2x",
                "error": [{"text": "the last termination reason is Error",
                           "sensitive": [{"unmasked": "web", "masked": "d2Vi"}]}],
                "details": "", "parentObject": "Deployment/web"
            },
            "status": {"lifecycle": "historical"}
        });
        let result: K8sgptResult = serde_json::from_value(yaml).expect("decodes");
        assert_eq!(result.spec.error[0].sensitive[0].masked, "d2Vi");
        assert_eq!(
            result.status.map(|s| s.lifecycle).as_deref(),
            Some("historical")
        );
    }
}
