//! The declared world model of the simulator: nodes, images and what each application does.

use std::collections::BTreeMap;

use aegis_core::image::ImageRef;
use aegis_core::quantity;
use serde::Deserialize;

/// The world file (`examples/mock-world.yaml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorldFile {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: serde_json::Value,
    pub spec: World,
}

/// What the simulated cluster is made of.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct World {
    /// The simulated "now" (RFC 3339).
    pub clock: String,
    /// How long before `clock` the workloads were created.
    pub workload_age_seconds: u64,
    pub nodes: Vec<NodeModel>,
    #[serde(default)]
    pub storage_classes: Vec<String>,
    pub images: Vec<ImageModel>,
}

/// A node and what it can hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeModel {
    pub name: String,
    pub cpu: String,
    pub memory: String,
    #[serde(default = "default_pods")]
    pub pods: u32,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub ready: Option<bool>,
}

fn default_pods() -> u32 {
    110
}

/// An image repository: the tags that exist, and how the application in it behaves.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageModel {
    pub repository: String,
    pub tags: Vec<String>,
    /// Pulling needs an imagePullSecret.
    #[serde(default)]
    pub private: bool,
    #[serde(default)]
    pub app: AppModel,
}

/// How an application behaves once its container starts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppModel {
    /// The port it listens on, if it serves anything.
    pub port: Option<i32>,
    /// HTTP paths that answer 200; other paths answer 404.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Steady-state memory use.
    pub memory: Option<String>,
    /// Environment variables it exits without.
    #[serde(default)]
    pub requires_env: Vec<String>,
    /// Response time per path, in milliseconds (others answer at once).
    #[serde(default)]
    pub latency_ms: BTreeMap<String, u64>,
}

impl World {
    /// Reads and checks a world file.
    pub fn parse(yaml: &str) -> Result<Self, String> {
        let file: WorldFile = serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
        if file.kind != "World" || !file.api_version.starts_with("sim.aegis.io/") {
            return Err(format!(
                "expected kind World of sim.aegis.io, found {} {}",
                file.api_version, file.kind
            ));
        }
        let world = file.spec;
        if world.nodes.is_empty() {
            return Err("the world has no nodes".to_owned());
        }
        for node in &world.nodes {
            if quantity::cpu_millis(&node.cpu).is_none() || quantity::bytes(&node.memory).is_none()
            {
                return Err(format!(
                    "node {} has an invalid cpu or memory quantity",
                    node.name
                ));
            }
        }
        for image in &world.images {
            if let Some(memory) = &image.app.memory
                && quantity::bytes(memory).is_none()
            {
                return Err(format!(
                    "image {} has an invalid memory quantity `{memory}`",
                    image.repository
                ));
            }
        }
        world
            .clock
            .parse::<k8s_openapi::jiff::Timestamp>()
            .map_err(|e| format!("clock `{}`: {e}", world.clock))?;
        Ok(world)
    }

    /// The image model of a reference's repository.
    pub fn image(&self, image: &ImageRef) -> Option<&ImageModel> {
        let repository = image.full_repository();
        self.images.iter().find(|m| {
            ImageRef::parse(&format!("{}:x", m.repository))
                .is_some_and(|r| r.full_repository() == repository)
        })
    }
}
