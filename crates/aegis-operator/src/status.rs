//! What `aegis operator status` reports from the cluster and this machine: the CRDs, the
//! leader, incidents by phase, and the GPUs (nvml-wrapper; a clear line when there is no
//! NVIDIA driver). The CLI adds Ollama's reachability and models.

use std::collections::BTreeMap;

use aegis_core::crd::IncidentResource;
use kube::Client;
use kube::api::{Api, ListParams};
use serde::Serialize;

use crate::Result;

/// The cluster's side of the operator's status.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatus {
    pub crd_installed: bool,
    pub k8sgpt_crd_installed: bool,
    /// Who leads (the Lease's holder), when anyone does.
    pub leader: Option<LeaderStatus>,
    /// Incidents by phase, every phase listed; absent when the CRD is not installed.
    pub incidents_by_phase: Option<BTreeMap<String, u64>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LeaderStatus {
    pub identity: String,
    pub renewed: Option<String>,
    pub transitions: i32,
}

/// Reads the operator's status from the cluster; `namespace` is the operator's (its Lease).
pub async fn cluster(client: &Client, namespace: &str) -> Result<ClusterStatus> {
    let crd_installed = crate::crd::installed(client, crate::crd::NAME).await?;
    let k8sgpt_crd_installed = crate::crd::installed(client, crate::crd::K8SGPT_RESULTS).await?;
    let leader = crate::leader::holder(client, namespace)
        .await?
        .map(|h| LeaderStatus {
            identity: h.identity,
            renewed: h.renewed,
            transitions: h.transitions,
        });
    let incidents_by_phase = if crd_installed {
        let api: Api<IncidentResource> = Api::all(client.clone());
        let mut counts: BTreeMap<String, u64> = aegis_core::lifecycle::Phase::ALL
            .iter()
            .map(|p| (p.as_str().to_owned(), 0))
            .collect();
        for incident in api.list(&ListParams::default()).await? {
            let phase = incident
                .status
                .and_then(|s| s.phase)
                .map_or("pending", |p| p.as_str());
            *counts.entry(phase.to_owned()).or_default() += 1;
        }
        Some(counts)
    } else {
        None
    };
    Ok(ClusterStatus {
        crd_installed,
        k8sgpt_crd_installed,
        leader,
        incidents_by_phase,
    })
}

/// One GPU as NVML reports it.
#[derive(Debug, Clone, Serialize)]
pub struct Gpu {
    pub index: u32,
    pub name: String,
    pub memory_total_bytes: u64,
    pub memory_used_bytes: u64,
    pub utilization_percent: u32,
}

/// The GPUs of this machine, or why none can be listed.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Gpus {
    Found {
        gpus: Vec<Gpu>,
    },
    /// No NVIDIA driver (NVML could not be loaded): models run on the CPU.
    NoDriver {
        detail: String,
    },
    /// NVML loaded but failed.
    Error {
        detail: String,
    },
}

/// Asks NVML for the GPUs.
pub fn gpus() -> Gpus {
    let nvml = match nvml_wrapper::Nvml::init() {
        Ok(nvml) => nvml,
        Err(error) => {
            return match error {
                nvml_wrapper::error::NvmlError::LibloadingError(_)
                | nvml_wrapper::error::NvmlError::DriverNotLoaded
                | nvml_wrapper::error::NvmlError::LibraryNotFound => Gpus::NoDriver {
                    detail: error.to_string(),
                },
                other => Gpus::Error {
                    detail: other.to_string(),
                },
            };
        }
    };
    let count = match nvml.device_count() {
        Ok(count) => count,
        Err(error) => {
            return Gpus::Error {
                detail: error.to_string(),
            };
        }
    };
    let mut gpus = Vec::new();
    for index in 0..count {
        let device = match nvml.device_by_index(index) {
            Ok(device) => device,
            Err(error) => {
                return Gpus::Error {
                    detail: format!("GPU {index}: {error}"),
                };
            }
        };
        let memory = device.memory_info().ok();
        gpus.push(Gpu {
            index,
            name: device.name().unwrap_or_else(|e| format!("unknown ({e})")),
            memory_total_bytes: memory.as_ref().map_or(0, |m| m.total),
            memory_used_bytes: memory.as_ref().map_or(0, |m| m.used),
            utilization_percent: device.utilization_rates().map_or(0, |u| u.gpu),
        });
    }
    Gpus::Found { gpus }
}
