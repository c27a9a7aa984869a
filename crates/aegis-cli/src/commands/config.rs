//! `aegis config show|path|init`.

use serde_json::json;

use super::print;
use crate::args::{ConfigAction, OutputFormat};
use crate::config::{self, Resolved};
use crate::error::{CliError, CliResult};
use crate::render::{self, Style};

pub fn run(
    action: Option<&ConfigAction>,
    output: OutputFormat,
    resolved: &Resolved,
    style: Style,
) -> CliResult<()> {
    match action.unwrap_or(&ConfigAction::Show) {
        ConfigAction::Show => {
            let entries = config::entries(resolved)?;
            let text = match output {
                OutputFormat::Table => render::config_entries(&entries, style),
                format => render::data(&json!({"settings": entries}), format)?,
            };
            print(&text)
        }
        ConfigAction::Path => {
            let text = match output {
                OutputFormat::Table => {
                    let mut text = String::new();
                    for file in &resolved.files {
                        let found = if file.exists { "found" } else { "absent" };
                        text.push_str(&format!(
                            "{}\t{found}\t{}\n",
                            file.layer,
                            file.path.display()
                        ));
                    }
                    text
                }
                format => render::data(
                    &json!({"files": resolved.files.iter().map(|f| json!({"layer": f.layer, "path": f.path, "exists": f.exists})).collect::<Vec<_>>()}),
                    format,
                )?,
            };
            print(&text)
        }
        ConfigAction::Init { path, force } => {
            let path = match path {
                Some(path) => path.clone(),
                None => config::user_file().ok_or_else(|| {
                    CliError::failure("no user configuration directory is known")
                        .hint("name the file: aegis config init FILE")
                })?,
            };
            config::write_template(&path, *force)?;
            eprintln!("wrote {}", path.display());
            Ok(())
        }
    }
}
