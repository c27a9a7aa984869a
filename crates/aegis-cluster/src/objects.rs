//! Sorting untyped Kubernetes objects (from files or the simulator) into a [`ClusterState`].

use aegis_core::ClusterState;

use crate::Scope;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Accepts Kubernetes objects one at a time and files them by kind.
#[derive(Debug, Default)]
pub struct ObjectSink {
    pub state: ClusterState,
    /// Objects outside this scope are skipped.
    pub scope: Scope,
}

impl ObjectSink {
    /// A sink keeping only objects inside `scope`.
    pub fn new(scope: Scope) -> Self {
        Self {
            state: ClusterState::default(),
            scope,
        }
    }

    /// Adds one object, or every item of a `List`. Returns the number of objects added, or why
    /// the object (or the first bad item of a list) could not be read.
    pub fn add(&mut self, value: Value) -> Result<usize, String> {
        let kind = value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if kind.ends_with("List")
            && let Some(Value::Array(_)) = value.get("items")
        {
            let Value::Object(mut map) = value else {
                return Err("a List that is not an object".to_owned());
            };
            let Some(Value::Array(items)) = map.remove("items") else {
                return Ok(0);
            };
            let mut added = 0;
            let mut first_error = None;
            for (index, item) in items.into_iter().enumerate() {
                match self.add(item) {
                    Ok(n) => added += n,
                    Err(e) => {
                        first_error.get_or_insert_with(|| format!("item {index}: {e}"));
                    }
                }
            }
            return match first_error {
                Some(error) => Err(format!("{error} ({added} other objects loaded)")),
                None => Ok(added),
            };
        }
        if !self
            .scope
            .includes(value.pointer("/metadata/namespace").and_then(Value::as_str))
        {
            return Ok(0);
        }
        let kind = kind.to_owned();
        self.add_object(&kind, value)?;
        Ok(1)
    }

    fn add_object(&mut self, kind: &str, value: Value) -> Result<(), String> {
        if kind.is_empty() {
            return Err("the document has no `kind`".to_owned());
        }
        let api_version = value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
        let state = &mut self.state;
        match (group, kind) {
            ("", "Pod") => push(&mut state.pods, value),
            ("", "Namespace") => push(&mut state.namespaces, value),
            ("", "Service") => push(&mut state.services, value),
            ("", "Node") => push(&mut state.nodes, value),
            ("", "PersistentVolumeClaim") => push(&mut state.persistent_volume_claims, value),
            ("", "ConfigMap") => push(&mut state.config_maps, value),
            ("", "Secret") => {
                let mut secret = parse::<k8s_openapi::api::core::v1::Secret>(value)?;
                ClusterState::redact_secret(&mut secret);
                state.secrets.push(secret);
                Ok(())
            }
            ("", "Event") => push(&mut state.events, value),
            ("apps", "Deployment") => push(&mut state.deployments, value),
            ("apps", "ReplicaSet") => push(&mut state.replica_sets, value),
            ("apps", "StatefulSet") => push(&mut state.stateful_sets, value),
            ("apps", "DaemonSet") => push(&mut state.daemon_sets, value),
            ("batch", "Job") => push(&mut state.jobs, value),
            ("batch", "CronJob") => push(&mut state.cron_jobs, value),
            ("discovery.k8s.io", "EndpointSlice") => push(&mut state.endpoint_slices, value),
            ("networking.k8s.io", "Ingress") => push(&mut state.ingresses, value),
            ("autoscaling", "HorizontalPodAutoscaler") if api_version == "autoscaling/v2" => {
                push(&mut state.horizontal_pod_autoscalers, value)
            }
            _ => {
                state.other_objects += 1;
                Ok(())
            }
        }
    }
}

fn parse<T: DeserializeOwned>(value: Value) -> Result<T, String> {
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .map(str::to_owned);
    serde_json::from_value(value).map_err(|e| match name {
        Some(name) => format!("`{name}`: {e}"),
        None => e.to_string(),
    })
}

fn push<T: DeserializeOwned>(list: &mut Vec<T>, value: Value) -> Result<(), String> {
    list.push(parse(value)?);
    Ok(())
}
