//! Configuration: figment layering of SPEC §12, remembering where each value came from.
//!
//! Lowest to highest: built-in defaults, `/etc/aegis/aegis.toml`, the user's
//! `<config dir>/aegis/aegis.toml`, `./aegis.toml`, `--config FILE`, `AEGIS_<SECTION>__<KEY>`
//! environment variables, and command-line flags.

use std::path::{Path, PathBuf};

use aegis_core::settings::Settings;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider};
use serde_json::Value;

use crate::args::GlobalArgs;
use crate::error::{CliError, CliResult};

/// The system-wide configuration file.
pub const SYSTEM_FILE: &str = "/etc/aegis/aegis.toml";

/// A configuration file and whether it was found.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub path: PathBuf,
    pub layer: &'static str,
    pub exists: bool,
}

/// Settings resolved from every layer, with the figment that can say where values came from.
#[derive(Debug)]
pub struct Resolved {
    pub settings: Settings,
    pub figment: Figment,
    pub files: Vec<ConfigFile>,
}

/// The user's configuration file.
pub fn user_file() -> Option<PathBuf> {
    directories::BaseDirs::new().map(|dirs| dirs.config_dir().join("aegis").join("aegis.toml"))
}

/// The user's state directory, where incidents are recorded.
pub fn default_state_dir() -> Option<PathBuf> {
    directories::BaseDirs::new().map(|dirs| {
        dirs.state_dir()
            .unwrap_or_else(|| dirs.data_local_dir())
            .join("aegis")
    })
}

/// A provider with a name people can read in `aegis config show`.
struct Named {
    name: &'static str,
    data: Serialized<Value>,
}

impl Provider for Named {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        self.data.data()
    }
}

/// Values given as command-line flags, nested under their settings keys.
fn flag_values(global: &GlobalArgs) -> Value {
    let mut kubernetes = serde_json::Map::new();
    if let Some(path) = &global.kubeconfig {
        kubernetes.insert(
            "kubeconfig".to_owned(),
            Value::String(path.display().to_string()),
        );
    }
    if let Some(context) = &global.context {
        kubernetes.insert("context".to_owned(), Value::String(context.clone()));
    }
    if let Some(namespace) = &global.namespace {
        kubernetes.insert("namespace".to_owned(), Value::String(namespace.clone()));
    }
    let mut root = serde_json::Map::new();
    if !kubernetes.is_empty() {
        root.insert("kubernetes".to_owned(), Value::Object(kubernetes));
    }
    Value::Object(root)
}

/// Resolves the settings from every layer.
pub fn resolve(global: &GlobalArgs) -> CliResult<Resolved> {
    let defaults = serde_json::to_value(Settings::default()).map_err(CliError::failure)?;
    let mut figment = Figment::new().merge(Named {
        name: "built-in default",
        data: Serialized::defaults(defaults),
    });
    let mut files = Vec::new();
    let mut candidates = vec![(PathBuf::from(SYSTEM_FILE), "system")];
    if let Some(user) = user_file() {
        candidates.push((user, "user"));
    }
    candidates.push((PathBuf::from("aegis.toml"), "working directory"));
    for (path, layer) in candidates {
        let exists = path.is_file();
        if exists {
            figment = figment.merge(Toml::file_exact(&path));
        }
        files.push(ConfigFile {
            path,
            layer,
            exists,
        });
    }
    if let Some(path) = &global.config {
        if !path.is_file() {
            return Err(CliError::failure(format!(
                "configuration file {} does not exist",
                path.display()
            ))
            .hint("create it with `aegis config init FILE`, or drop --config"));
        }
        figment = figment.merge(Toml::file_exact(path));
        files.push(ConfigFile {
            path: path.clone(),
            layer: "--config",
            exists: true,
        });
    }
    figment = figment
        // Only `AEGIS_<SECTION>__<KEY>` is configuration: other `AEGIS_` variables (a script's
        // own `AEGIS_BIN`, say) are not ours to read.
        .merge(
            Env::prefixed("AEGIS_")
                .filter(|key| key.as_str().contains("__"))
                .split("__"),
        )
        .merge(Named {
            name: "command-line flag",
            data: Serialized::defaults(flag_values(global)),
        });
    let settings: Settings = figment.extract().map_err(|e| {
        CliError::failure(format!("invalid configuration: {}", describe(&e))).hint(
            "`aegis config path` lists the files read; `aegis config init` writes a valid one",
        )
    })?;
    if !(0.0..=1.0).contains(&settings.agent.confidence_threshold) {
        return Err(CliError::failure(format!(
            "invalid configuration: agent.confidence_threshold is {}, it must be between 0 and 1",
            settings.agent.confidence_threshold
        )));
    }
    Ok(Resolved {
        settings,
        figment,
        files,
    })
}

fn describe(error: &figment::Error) -> String {
    error
        .clone()
        .into_iter()
        .map(|e| {
            let source = e.metadata.as_ref().map(|m| match &m.source {
                Some(source) => format!(" (from {} {source})", m.name),
                None => format!(" (from {})", m.name),
            });
            let path = if e.path.is_empty() {
                String::new()
            } else {
                format!("{}: ", e.path.join("."))
            };
            format!("{path}{}{}", e.kind, source.unwrap_or_default())
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// One setting, its value and where the value came from.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Entry {
    pub key: String,
    pub value: Value,
    pub source: String,
}

/// Every setting with its provenance, in key order.
pub fn entries(resolved: &Resolved) -> CliResult<Vec<Entry>> {
    let value = serde_json::to_value(&resolved.settings).map_err(CliError::failure)?;
    let mut leaves = Vec::new();
    flatten(&value, String::new(), &mut leaves);
    Ok(leaves
        .into_iter()
        .map(|(key, value)| {
            let source = resolved.figment.find_metadata(&key).map_or_else(
                || "built-in default".to_owned(),
                |m| match &m.source {
                    Some(source) => format!("{} {source}", m.name),
                    None => m.name.to_string(),
                },
            );
            Entry { key, value, source }
        })
        .collect())
}

fn flatten(value: &Value, prefix: String, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(child, path, out);
            }
        }
        other => out.push((prefix, other.clone())),
    }
}

/// A commented configuration file holding the defaults.
pub fn template() -> CliResult<String> {
    let defaults = toml::to_string_pretty(&Settings::default()).map_err(CliError::failure)?;
    Ok(format!(
        "# AEGIS configuration. Every value shown is the built-in default; delete what you do not change.\n\
         # Layers, lowest first: {SYSTEM_FILE}, the user file, ./aegis.toml, --config FILE,\n\
         # environment variables AEGIS_<SECTION>__<KEY> (e.g. AEGIS_LLM__OLLAMA_URL), then flags.\n\
         # Unset optional values (llm.ollama_url, kubernetes.kubeconfig, agent.state_dir, …) are omitted.\n\n{defaults}"
    ))
}

/// Writes the template to `path`, refusing to overwrite unless `force`.
pub fn write_template(path: &Path, force: bool) -> CliResult<()> {
    if path.exists() && !force {
        return Err(
            CliError::failure(format!("{} already exists", path.display()))
                .hint("pass --force to overwrite it"),
        );
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| CliError::failure(format!("cannot create {}: {e}", parent.display())))?;
    }
    std::fs::write(path, template()?)
        .map_err(|e| CliError::failure(format!("cannot write {}: {e}", path.display())))
}
