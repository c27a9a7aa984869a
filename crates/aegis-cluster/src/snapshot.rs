//! The snapshot source: a directory (or one file) of `kubectl get … -o yaml|json` output and a
//! `logs/<namespace>/<pod>/<container>[.previous].log` tree (SPEC §6).
//!
//! Every file is read on its own; a bad file becomes a [`LoadWarning`] naming its path and the
//! reason, and the rest still loads. The snapshot's "now" is its newest timestamp.

use std::fs;
use std::path::{Path, PathBuf};

use aegis_core::SourceKind;
use aegis_core::state::LogKey;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::Value;

use crate::{ClusterRead, Error, LoadWarning, Loaded, ObjectSink, Result, Scope};

/// Reads a snapshot from disk.
#[derive(Debug, Clone)]
pub struct SnapshotSource {
    paths: Vec<PathBuf>,
}

impl SnapshotSource {
    /// A source reading the given directories or files, merged.
    pub fn new(paths: Vec<PathBuf>) -> Self {
        Self { paths }
    }

    /// Reads everything now, on the calling thread (and helpers for large directories).
    pub fn load_blocking(&self, scope: &Scope) -> Result<Loaded> {
        let mut manifests = Vec::new();
        let mut log_files = Vec::new();
        for path in &self.paths {
            let metadata = fs::metadata(path).map_err(|e| Error::SnapshotUnreadable {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            if metadata.is_dir() {
                walk(path, path, &mut manifests, &mut log_files).map_err(|e| {
                    Error::SnapshotUnreadable {
                        path: path.clone(),
                        reason: e.to_string(),
                    }
                })?;
            } else {
                manifests.push(path.clone());
            }
        }
        manifests.sort();
        log_files.sort();

        let parsed = parse_in_parallel(&manifests);
        let mut sink = ObjectSink::new(scope.clone());
        let mut warnings = Vec::new();
        let mut objects_read = 0;
        for (path, documents) in manifests.iter().zip(parsed) {
            match documents {
                Ok(documents) => {
                    for (index, document) in documents.into_iter().enumerate() {
                        if document.is_null() {
                            continue;
                        }
                        objects_read += 1;
                        match sink.add(document) {
                            Ok(_) => {}
                            Err(reason) => warnings.push(LoadWarning {
                                location: format!("{} (document {})", path.display(), index + 1),
                                reason,
                            }),
                        }
                    }
                }
                Err(reason) => warnings.push(LoadWarning {
                    location: path.display().to_string(),
                    reason,
                }),
            }
        }
        if objects_read == 0 && log_files.is_empty() {
            let detail = match warnings.first() {
                Some(w) => format!(" that could be read: {w}"),
                None => " (expected *.yaml, *.yml or *.json files from `kubectl get … -o yaml`)"
                    .to_owned(),
            };
            return Err(Error::SnapshotEmpty {
                path: self.paths.first().cloned().unwrap_or_default(),
                detail,
            });
        }
        let mut state = sink.state;
        for (key, path) in log_files {
            if !scope.includes(Some(&key.namespace)) {
                continue;
            }
            match fs::read(&path) {
                Ok(bytes) => {
                    state
                        .logs
                        .insert(key, String::from_utf8_lossy(&bytes).into_owned());
                }
                Err(e) => warnings.push(LoadWarning {
                    location: path.display().to_string(),
                    reason: e.to_string(),
                }),
            }
        }
        state.settle_now();
        Ok(Loaded { state, warnings })
    }
}

impl ClusterRead for SnapshotSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Snapshot
    }

    fn load<'a>(&'a self, scope: &'a Scope) -> BoxFuture<'a, Result<Loaded>> {
        async move { self.load_blocking(scope) }.boxed()
    }
}

/// Collects manifest files and the `logs/` tree under `dir`.
fn walk(
    root: &Path,
    dir: &Path,
    manifests: &mut Vec<PathBuf>,
    logs: &mut Vec<(LogKey, PathBuf)>,
) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            if path == root.join("logs") {
                collect_logs(&path, logs)?;
            } else {
                walk(root, &path, manifests, logs)?;
            }
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            manifests.push(path);
        }
    }
    Ok(())
}

/// Reads `logs/<namespace>/<pod>/<container>.log` and `<container>.previous.log`.
fn collect_logs(logs_dir: &Path, logs: &mut Vec<(LogKey, PathBuf)>) -> std::io::Result<()> {
    for namespace in fs::read_dir(logs_dir)? {
        let namespace = namespace?;
        if !namespace.file_type()?.is_dir() {
            continue;
        }
        for pod in fs::read_dir(namespace.path())? {
            let pod = pod?;
            if !pod.file_type()?.is_dir() {
                continue;
            }
            for file in fs::read_dir(pod.path())? {
                let file = file?;
                let name = file.file_name().to_string_lossy().into_owned();
                let Some(stem) = name.strip_suffix(".log") else {
                    continue;
                };
                let (container, previous) = match stem.strip_suffix(".previous") {
                    Some(container) => (container, true),
                    None => (stem, false),
                };
                logs.push((
                    LogKey {
                        namespace: namespace.file_name().to_string_lossy().into_owned(),
                        pod: pod.file_name().to_string_lossy().into_owned(),
                        container: container.to_owned(),
                        previous,
                    },
                    file.path(),
                ));
            }
        }
    }
    Ok(())
}

/// Parses files on every core; large snapshots are many files or a few large ones.
fn parse_in_parallel(paths: &[PathBuf]) -> Vec<Result<Vec<Value>, String>> {
    let workers = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    if paths.len() < 2 || workers < 2 {
        return paths.iter().map(|p| parse_file(p)).collect();
    }
    let chunk = paths.len().div_ceil(workers);
    std::thread::scope(|scope| {
        let handles: Vec<_> = paths
            .chunks(chunk)
            .map(|chunk| {
                scope.spawn(move || chunk.iter().map(|p| parse_file(p)).collect::<Vec<_>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|_| vec![Err("the parser thread panicked".to_owned())])
            })
            .collect()
    })
}

/// Parses one file into its documents.
fn parse_file(path: &Path) -> Result<Vec<Value>, String> {
    let text = fs::read_to_string(path).map_err(|e| e.to_string())?;
    let is_json = path.extension().and_then(|e| e.to_str()) == Some("json");
    if is_json {
        return serde_json::from_str::<Value>(&text)
            .map(|v| vec![v])
            .map_err(|e| format!("invalid JSON: {e}"));
    }
    let mut documents = Vec::new();
    for document in serde_yaml::Deserializer::from_str(&text) {
        let value = Value::deserialize(document).map_err(|e| format!("invalid YAML: {e}"))?;
        documents.push(value);
    }
    if documents.iter().all(Value::is_null) {
        return Err("the file holds no YAML document".to_owned());
    }
    if let Some(bad) = documents.iter().find(|d| !d.is_object() && !d.is_null()) {
        return Err(format!(
            "expected Kubernetes objects, found a YAML {}",
            match bad {
                Value::Array(_) => "sequence",
                Value::String(_) => "string",
                _ => "scalar",
            }
        ));
    }
    Ok(documents)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        let path = dir.join(name);
        fs::create_dir_all(path.parent().expect("has parent")).expect("mkdir");
        fs::write(path, text).expect("write");
    }

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-0\n  namespace: shop\n  creationTimestamp: \"2026-01-02T03:04:05Z\"\nspec:\n  containers:\n  - name: web\n    image: nginx\n";

    #[test]
    fn lists_multi_documents_json_and_logs_all_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(
            dir.path(),
            "pods.yaml",
            &format!(
                "apiVersion: v1\nkind: List\nitems:\n- {}",
                POD.replace('\n', "\n  ")
            ),
        );
        write(
            dir.path(),
            "multi.yml",
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: shop}\ndata: {k: v}\n---\n",
        );
        write(
            dir.path(),
            "nested/svc.json",
            r#"{"apiVersion":"v1","kind":"ServiceList","items":[{"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"shop"},"spec":{}}]}"#,
        );
        write(
            dir.path(),
            "crd.yaml",
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n",
        );
        write(dir.path(), "logs/shop/web-0/web.log", "hello\n");
        write(dir.path(), "logs/shop/web-0/web.previous.log", "FATAL\n");
        let loaded = SnapshotSource::new(vec![dir.path().to_owned()])
            .load_blocking(&Scope::all())
            .expect("loads");
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let state = loaded.state;
        assert_eq!(state.pods.len(), 1);
        assert_eq!(state.namespaces.len(), 1);
        assert_eq!(state.config_maps.len(), 1);
        assert_eq!(state.services.len(), 1);
        assert_eq!(state.other_objects, 1);
        assert_eq!(state.log("shop", "web-0", "web", false), Some("hello\n"));
        assert_eq!(state.log("shop", "web-0", "web", true), Some("FATAL\n"));
        assert_eq!(state.now().to_string(), "2026-01-02T03:04:05Z");
    }

    #[test]
    fn bad_files_are_reported_by_path_and_the_rest_still_loads() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "good.yaml", POD);
        write(
            dir.path(),
            "broken.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata: [unclosed\n",
        );
        write(
            dir.path(),
            "wrongtype.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\nspec:\n  containers: 12\n",
        );
        write(dir.path(), "bad.json", "{not json");
        let loaded = SnapshotSource::new(vec![dir.path().to_owned()])
            .load_blocking(&Scope::all())
            .expect("loads the good file");
        assert_eq!(loaded.state.pods.len(), 1);
        let mut locations: Vec<_> = loaded
            .warnings
            .iter()
            .map(|w| w.location.rsplit('/').next().unwrap_or_default().to_owned())
            .collect();
        locations.sort();
        assert_eq!(
            locations,
            ["bad.json", "broken.yaml", "wrongtype.yaml (document 1)"]
        );
        assert!(loaded.warnings.iter().all(|w| !w.reason.is_empty()));
    }

    #[test]
    fn secret_values_never_enter_the_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(
            dir.path(),
            "secret.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: shop}\ndata: {password: aHVudGVyMg==}\nstringData: {token: s3cr3t}\n",
        );
        let loaded = SnapshotSource::new(vec![dir.path().to_owned()])
            .load_blocking(&Scope::all())
            .expect("loads");
        let secret = &loaded.state.secrets[0];
        let data = secret.data.as_ref().expect("keys kept");
        assert_eq!(data.keys().collect::<Vec<_>>(), ["password", "token"]);
        assert!(data.values().all(|v| v.0.is_empty()));
        assert!(secret.string_data.is_none());
    }

    #[test]
    fn missing_and_empty_snapshots_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing =
            SnapshotSource::new(vec![dir.path().join("nope")]).load_blocking(&Scope::all());
        assert!(matches!(missing, Err(Error::SnapshotUnreadable { .. })));
        write(dir.path(), "notes.txt", "nothing here");
        let empty = SnapshotSource::new(vec![dir.path().to_owned()]).load_blocking(&Scope::all());
        assert!(matches!(empty, Err(Error::SnapshotEmpty { .. })));
        write(dir.path(), "junk.yaml", "- a\n- b\n");
        let junk =
            SnapshotSource::new(vec![dir.path().join("junk.yaml")]).load_blocking(&Scope::all());
        let error = junk.expect_err("junk is no snapshot").to_string();
        assert!(
            error.contains("junk.yaml") && error.contains("sequence"),
            "{error}"
        );
    }

    #[test]
    fn a_namespace_scope_keeps_only_that_namespace() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "a.yaml", POD);
        write(
            dir.path(),
            "b.yaml",
            &POD.replace("shop", "other").replace("web-0", "web-1"),
        );
        let loaded = SnapshotSource::new(vec![dir.path().to_owned()])
            .load_blocking(&Scope::namespace("other"))
            .expect("loads");
        assert_eq!(loaded.state.pods.len(), 1);
        assert_eq!(loaded.state.pods[0].metadata.name.as_deref(), Some("web-1"));
    }
}
