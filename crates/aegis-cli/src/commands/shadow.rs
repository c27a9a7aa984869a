//! `aegis shadow create|list|delete`: shadow environments by hand. Every shadow command first
//! deletes the shadows past their expiry, so shadows left behind by a crash do not pile up.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aegis_agent::{Agent, AnalyzeRequest};
use aegis_cluster::{Cluster, Scope};
use aegis_core::{Fix, Incident, PatchType, ResourceKind, ResourceRef, SourceKind};
use aegis_shadow::{Creation, Limits, ShadowInfo, ShadowRequest, Tracker};
use serde_json::{Value, json};

use super::analyze::{Source, connect, open_source};
use super::print;
use crate::args::{GlobalArgs, OutputFormat, ShadowCommand};
use crate::config::Resolved;
use crate::error::{CliError, CliResult};
use crate::render::{self, Style};

pub async fn run(
    global: &GlobalArgs,
    command: &ShadowCommand,
    resolved: &Resolved,
    style: Style,
) -> CliResult<()> {
    let source = open_source(global, resolved).await?;
    let Some(production) = source.writer.clone() else {
        return Err(
            CliError::failure("a snapshot is read-only: shadows run on a cluster")
                .hint("use --mock for the demo world, or a kubeconfig context"),
        );
    };
    // Shadows go to --shadow-context, else shadow.context, else the source's own cluster. The
    // setting only concerns live clusters; the flag on another source is a mistake.
    let flag = match command {
        ShadowCommand::Create { shadow_context, .. } => shadow_context.clone(),
        _ => None,
    };
    let live = source.reader.kind() == SourceKind::Cluster;
    if flag.is_some() && !live {
        return Err(CliError::usage(
            "--shadow-context needs a live cluster as the source, not --mock",
        ));
    }
    let context = flag.or_else(|| {
        live.then(|| resolved.settings.shadow.context.clone())
            .flatten()
    });
    let shadow_cluster: Arc<dyn Cluster> = match context {
        Some(context) => Arc::new(connect(resolved, Some(context)).await?),
        None => production.clone(),
    };
    for name in aegis_shadow::collect_garbage(shadow_cluster.as_ref())
        .await
        .map_err(CliError::failure)?
        .deleted
    {
        eprintln!("deleted expired shadow {name}");
    }
    match command {
        ShadowCommand::List => list(shadow_cluster.as_ref(), global.output, style).await,
        ShadowCommand::Delete { id, expired } => {
            if *expired {
                // Expired shadows were collected above.
                return Ok(());
            }
            let name = id.as_deref().unwrap_or_default();
            aegis_shadow::delete(shadow_cluster.as_ref(), name)
                .await
                .map_err(|e| {
                    CliError::failure(e).hint("`aegis shadow list` shows the shadows there are")
                })?;
            eprintln!("deleted shadow {name}");
            Ok(())
        }
        ShadowCommand::Create {
            target,
            incident,
            fix,
            ttl,
            wait,
            ..
        } => {
            let ttl = match ttl {
                Some(text) => parse_duration(text)?,
                None => Duration::from_secs(resolved.settings.shadow.ttl_minutes * 60),
            };
            let options = CreateOptions {
                target: target.clone(),
                incident: incident.as_deref(),
                fix_file: fix.as_deref(),
                ttl,
                wait: *wait,
            };
            create(
                &source,
                production.as_ref(),
                shadow_cluster.as_ref(),
                resolved,
                &options,
                global.output,
            )
            .await
        }
    }
}

async fn list(cluster: &dyn Cluster, output: OutputFormat, style: Style) -> CliResult<()> {
    let shadows = aegis_shadow::list(cluster)
        .await
        .map_err(CliError::failure)?;
    let now = cluster.now();
    let text = match output {
        OutputFormat::Table => render::shadow_list(&shadows, now, style),
        format => render::data(
            &json!({"shadows": shadows.iter().map(|s| shadow_json(s, now)).collect::<Vec<_>>()}),
            format,
        )?,
    };
    print(&text)
}

fn shadow_json(shadow: &ShadowInfo, now: k8s_openapi::jiff::Timestamp) -> Value {
    json!({
        "name": shadow.name,
        "source_workload": shadow.source_workload,
        "incident": shadow.incident,
        "fix_hash": shadow.fix_hash,
        "created": shadow.created.map(|t| t.to_string()),
        "expires": shadow.expires.map(|t| t.to_string()),
        "expired": shadow.expired(now),
        "verdict": shadow.verdict,
        "terminating": shadow.terminating,
    })
}

/// What `shadow create` was asked for.
struct CreateOptions<'a> {
    target: aegis_core::TargetSpec,
    incident: Option<&'a str>,
    fix_file: Option<&'a Path>,
    ttl: Duration,
    wait: bool,
}

async fn create(
    source: &Source,
    production: &dyn Cluster,
    shadow_cluster: &dyn Cluster,
    resolved: &Resolved,
    options: &CreateOptions<'_>,
    output: OutputFormat,
) -> CliResult<()> {
    let settings = &resolved.settings;
    let namespace = settings
        .kubernetes
        .namespace
        .clone()
        .unwrap_or_else(|| source.default_namespace.clone());
    let target = &options.target;
    if aegis_shadow::clone::clone_kind(target.kind.as_str()).is_err()
        && target.kind != ResourceKind::Service
    {
        return Err(
            CliError::usage(format!("{} cannot be shadowed", target.kind))
                .hint("shadow a workload: deploy/x, sts/x, rs/x, ds/x, pod/x, job/x or cronjob/x"),
        );
    }
    let workload = ResourceRef::new(target.kind, Some(&namespace), &target.name);
    let state = source
        .reader
        .load(&Scope::namespace(&namespace))
        .await
        .map_err(CliError::failure)?
        .state;
    let report = Agent::new(settings)
        .analyze(
            &state,
            source.reader.kind(),
            &AnalyzeRequest {
                target: Some(workload.clone()),
                ..AnalyzeRequest::default()
            },
        )
        .map_err(|e| CliError::failure(e).hint("check the name and the namespace (-n NS)"))?;
    let incident = choose_incident(&report.incidents, &workload, options.incident, resolved)?;
    let fix = match options.fix_file {
        Some(path) => fix_from_file(path, &incident.workload, &state)?,
        None => incident.fix.clone().ok_or_else(|| {
            CliError::failure(format!(
                "incident {} has no fix to verify: {}",
                incident.id, incident.rca.decision_rationale
            ))
            .hint("give one with --fix FILE")
        })?,
    };
    let plan = match (&options.fix_file, &incident.verification.plan) {
        (None, Some(plan)) => plan.clone(),
        _ => aegis_agent::plan_for(&state, &fix, &incident.workload, &settings.shadow),
    };
    let mock = source.reader.kind() == SourceKind::Mock;
    if mock && !options.wait {
        eprintln!("notice: the mock world lives in this process; waiting for the verdict");
    }
    let request = ShadowRequest {
        state: &state,
        workload: incident.workload.clone(),
        category: incident.rca.category,
        fixes: vec![fix.clone()],
        plan,
        incident: Some(incident.id.clone()),
        limits: Limits {
            ttl: options.ttl,
            max_concurrent: settings.shadow.max_concurrent as usize,
            max_candidates: 1,
            keep: true,
            grant: settings.shadow.grant.clone(),
        },
    };
    let tracker = Tracker::default();
    if options.wait || mock {
        let verification = aegis_shadow::verify(production, shadow_cluster, &request, &tracker);
        let result = tokio::select! {
            result = verification => result.map_err(CliError::failure)?,
            _ = tokio::signal::ctrl_c() => {
                tracker.clean_up(shadow_cluster).await;
                return Err(CliError::failure("interrupted: the shadow was deleted"));
            }
        };
        let text = match output {
            OutputFormat::Table => render::verification(&result),
            format => render::data(&result, format)?,
        };
        return print(&text);
    }
    let created = aegis_shadow::create(production, shadow_cluster, &request, &fix, &tracker)
        .await
        .map_err(CliError::failure)?;
    match created {
        Creation::Refused(result) => Err(CliError::failure(result.reason)),
        Creation::Created(created) => {
            let document = json!({
                "shadow": created.namespace,
                "incident": incident.id,
                "placeholders": created.placeholders,
            });
            let text = match output {
                OutputFormat::Table => {
                    let mut text = format!("created shadow {}\n", created.namespace);
                    for placeholder in &created.placeholders {
                        text.push_str(&format!("placeholder: {placeholder}\n"));
                    }
                    text
                }
                format => render::data(&document, format)?,
            };
            print(&text)
        }
    }
}

/// The incident to reproduce: the recorded one named by `--incident`, else the first incident
/// of the workload with a fix, else its first incident.
fn choose_incident(
    incidents: &[Incident],
    workload: &ResourceRef,
    wanted: Option<&str>,
    resolved: &Resolved,
) -> CliResult<Incident> {
    if let Some(id) = wanted {
        let stored = crate::store::configured(&resolved.settings)?.find(id)?;
        if &stored.incident.workload != workload {
            return Err(CliError::usage(format!(
                "incident {} is about {}, not {workload}",
                stored.incident.id, stored.incident.workload
            )));
        }
        return Ok(stored.incident);
    }
    incidents
        .iter()
        .find(|i| i.fix.is_some())
        .or_else(|| incidents.first())
        .cloned()
        .ok_or_else(|| {
            CliError::failure(format!(
                "AEGIS finds no incident on {workload}: there is nothing to reproduce"
            ))
            .hint("a shadow proves a fix against the failure it reproduces; `aegis analyze` shows what is failing")
        })
}

/// A fix from a file: a fix object (with `patch` and `target`) or a bare strategic-merge patch
/// for the workload. Either passes the fix policy, or the command fails naming what it denies.
fn fix_from_file(
    path: &Path,
    workload: &ResourceRef,
    state: &aegis_core::ClusterState,
) -> CliResult<Fix> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::failure(format!("cannot read --fix {}: {e}", path.display())))?;
    let value: Value = serde_yaml::from_str(&text).map_err(|e| {
        CliError::usage(format!("--fix {}: not JSON or YAML: {e}", path.display()))
            .hint("give a strategic-merge patch for the workload, or a fix object from `aegis analyze -o json`")
    })?;
    let (target, patch_type, patch, summary) =
        if value.get("patch").is_some() && value.get("target").is_some() {
            let target: ResourceRef = serde_json::from_value(value["target"].clone())
                .map_err(|e| CliError::usage(format!("--fix {}: target: {e}", path.display())))?;
            let patch_type: PatchType = match value.get("patch_type") {
                Some(kind) => serde_json::from_value(kind.clone()).map_err(|e| {
                    CliError::usage(format!("--fix {}: patch_type: {e}", path.display()))
                })?,
                None => PatchType::StrategicMerge,
            };
            let summary = value
                .get("summary")
                .and_then(Value::as_str)
                .unwrap_or("the fix from the file")
                .to_owned();
            (target, patch_type, value["patch"].clone(), summary)
        } else {
            (
                workload.clone(),
                PatchType::StrategicMerge,
                value,
                format!("the patch in {}", path.display()),
            )
        };
    if !patch.is_object() {
        return Err(CliError::usage(format!(
            "--fix {}: a strategic-merge patch is a JSON object",
            path.display()
        )));
    }
    aegis_agent::manual_fix(state, target, patch_type, patch, summary)
        .map_err(|e| CliError::failure(format!("--fix {}: {e}", path.display())))
}

/// `30m`, `2h`, `90s`, `1d`.
fn parse_duration(text: &str) -> CliResult<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| {
        CliError::usage(format!(
            "--ttl {text}: expected a number and a unit, such as 30m"
        ))
    })?;
    let seconds = match unit {
        "s" => number,
        "m" | "" => number * 60,
        "h" => number * 3600,
        "d" => number * 86_400,
        other => {
            return Err(
                CliError::usage(format!("--ttl {text}: unknown unit `{other}`"))
                    .hint("use s, m, h or d, such as 30m"),
            );
        }
    };
    if seconds == 0 {
        return Err(CliError::usage("--ttl must be longer than zero"));
    }
    Ok(Duration::from_secs(seconds))
}
