//! The snapshot source: a directory (or one file) of `kubectl get … -o yaml|json` output and a
//! `logs/<namespace>/<pod>/<container>[.previous].log` tree (SPEC §6).
//!
//! Every file is read on its own; a bad file becomes a [`LoadWarning`] naming its path and the
//! reason, and the rest still loads. The snapshot's "now" is its newest timestamp.

use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use aegis_core::SourceKind;
use aegis_core::state::LogKey;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::Value;

use crate::objects::{Object, YamlItem};
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

    /// Reads everything now, on the calling thread and helpers for large snapshots.
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

        // One file at a time, so that only one file's text is held beside the objects.
        let mut warnings = Vec::new();
        let mut state = aegis_core::ClusterState {
            // A snapshot read the kinds it holds, and no others (SPEC §6, coverage).
            read_kinds: Some(std::collections::BTreeSet::new()),
            ..aegis_core::ClusterState::default()
        };
        let mut objects_read = 0;
        // One buffer serves every file: its pages are touched once, not once per file.
        let mut text = String::new();
        for path in &manifests {
            text.clear();
            if let Err(e) = fs::File::open(path).and_then(|mut file| file.read_to_string(&mut text))
            {
                warnings.push(LoadWarning {
                    location: path.display().to_string(),
                    reason: e.to_string(),
                });
                continue;
            }
            match split_units(path, &text) {
                Ok(units) => {
                    let (found, unit_warnings, read) = decode_in_parallel(&units, scope);
                    state.absorb(found);
                    warnings.extend(unit_warnings);
                    objects_read += read;
                }
                Err(reason) => warnings.push(LoadWarning {
                    location: path.display().to_string(),
                    reason,
                }),
            }
        }
        drop(text);
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

/// A piece of a file decoded on its own: one item of a kubectl-style List, one YAML document,
/// or one JSON file.
#[derive(Debug)]
enum Unit<'a> {
    /// The YAML text of one List item as the List holds it, with its kind.
    Item {
        location: String,
        api_version: String,
        kind: String,
        text: &'a str,
    },
    /// A YAML document of any other shape.
    Document {
        location: String,
        text: &'a str,
    },
    Json {
        location: String,
        text: &'a str,
    },
}

impl Unit<'_> {
    /// Bytes of text to decode.
    fn size(&self) -> usize {
        match self {
            Self::Item { text, .. } | Self::Document { text, .. } | Self::Json { text, .. } => {
                text.len()
            }
        }
    }
}

/// Splits a file into units. Errors concern the whole file.
fn split_units<'a>(path: &Path, text: &'a str) -> Result<Vec<Unit<'a>>, String> {
    let display = path.display().to_string();
    if path.extension().and_then(|e| e.to_str()) == Some("json") {
        return Ok(vec![Unit::Json {
            location: display,
            text,
        }]);
    }
    let documents = split_documents(text);
    let single = documents.len() == 1;
    let mut units = Vec::new();
    for (index, document) in documents.into_iter().enumerate() {
        let location = if single {
            display.clone()
        } else {
            format!("{display} (document {})", index + 1)
        };
        match list_items(document) {
            Some(items) => {
                for (item_index, item) in items.into_iter().enumerate() {
                    units.push(item_unit(&location, item_index, item));
                }
            }
            None => units.push(Unit::Document {
                location,
                text: document,
            }),
        }
    }
    if units.is_empty() {
        return Err("the file holds no YAML document".to_owned());
    }
    Ok(units)
}

/// Splits multi-document YAML on `---` lines, dropping documents with no content.
fn split_documents(text: &str) -> Vec<&str> {
    // Most files hold one document: no `---` at the start of any line.
    if !text.starts_with("---") && !text.contains("\n---") {
        return if has_content(text) {
            vec![text]
        } else {
            Vec::new()
        };
    }
    let mut documents = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end();
        if bare == "---" || bare.starts_with("--- ") {
            documents.push(&text[start..offset]);
            start = offset + line.len();
        }
        offset += line.len();
    }
    documents.push(&text[start..]);
    documents.into_iter().filter(|d| has_content(d)).collect()
}

/// Whether a document holds more than blank lines and comments.
fn has_content(document: &str) -> bool {
    document
        .lines()
        .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
}

/// The items of a List written the way kubectl writes it (`items:` then `- ` entries at the
/// left margin), or `None` for any other document.
fn list_items(document: &str) -> Option<Vec<&str>> {
    let mut is_list = false;
    let mut in_items = false;
    let mut items = Vec::new();
    let mut item_start: Option<usize> = None;
    let mut offset = 0;
    for line in document.split_inclusive('\n') {
        let at_margin = !line.starts_with([' ', '\t', '#', '\n', '\r']);
        if line.starts_with("kind: ") && line.trim_end().ends_with("List") {
            is_list = true;
        }
        if at_margin {
            if let Some(start) = item_start.take() {
                items.push(&document[start..offset]);
            }
            if in_items && line.starts_with("- ") {
                item_start = Some(offset);
            } else if line.trim_end() == "items:" {
                in_items = true;
            } else if in_items && line.starts_with("items:") {
                return None;
            } else {
                in_items = false;
            }
        }
        offset += line.len();
    }
    if let Some(start) = item_start {
        items.push(&document[start..]);
    }
    (is_list && !items.is_empty()).then_some(items)
}

/// One List item with its kind and apiVersion, read from its own top-level keys.
fn item_unit<'a>(location: &str, index: usize, item: &'a str) -> Unit<'a> {
    let mut api_version = String::new();
    let mut kind = String::new();
    for (number, line) in item.split_inclusive('\n').enumerate() {
        let line = if number == 0 {
            line.get(2..).unwrap_or_default()
        } else {
            match line.strip_prefix("  ") {
                Some(inner) if !inner.starts_with(' ') => inner,
                _ => continue,
            }
        };
        if let Some(value) = line.strip_prefix("kind: ") {
            kind = value.trim().trim_matches(['"', '\'']).to_owned();
        } else if let Some(value) = line.strip_prefix("apiVersion: ") {
            api_version = value.trim().trim_matches(['"', '\'']).to_owned();
        }
        // kubectl writes both first; the rest of the item is not read here.
        if !kind.is_empty() && !api_version.is_empty() {
            break;
        }
    }
    Unit::Item {
        location: format!("{location} (item {})", index + 1),
        api_version,
        kind,
        text: item,
    }
}

/// Decodes units on every core into one state; returns it, the warnings and the number of
/// objects read (inside the scope or not).
fn decode_in_parallel(
    units: &[Unit<'_>],
    scope: &Scope,
) -> (aegis_core::ClusterState, Vec<LoadWarning>, usize) {
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(units.len().max(1));
    // Contiguous ranges of about equal text size, so that the state keeps file order and a
    // large pods file does not land on one core.
    let total: usize = units.iter().map(Unit::size).sum();
    let share = total.div_ceil(workers).max(1);
    let mut ranges = Vec::new();
    let (mut start, mut filled) = (0, 0);
    for (index, unit) in units.iter().enumerate() {
        filled += unit.size();
        if filled >= share && ranges.len() + 1 < workers {
            ranges.push(&units[start..=index]);
            start = index + 1;
            filled = 0;
        }
    }
    ranges.push(&units[start..]);
    // The first range is decoded here, the others on threads of their own.
    let mut ranges = ranges.into_iter();
    let first = ranges.next().unwrap_or_default();
    let results: Vec<(ObjectSink, Vec<LoadWarning>, usize)> = std::thread::scope(|threads| {
        let handles: Vec<_> = ranges
            .map(|range| threads.spawn(move || decode_units(range, range, scope)))
            .collect();
        // The first range's lists are made room for every range's objects: the others are
        // then moved into them without growing (growing a list copies all of it while the
        // old copy still stands, which was the peak of a large load).
        let mut results = vec![decode_units(first, units, scope)];
        results.extend(handles.into_iter().map(|handle| {
            handle.join().unwrap_or_else(|_| {
                let warning = LoadWarning {
                    location: "snapshot".to_owned(),
                    reason: "a decoder thread panicked".to_owned(),
                };
                (ObjectSink::new(scope.clone()), vec![warning], 0)
            })
        }));
        results
    });
    let mut state = aegis_core::ClusterState {
        read_kinds: Some(std::collections::BTreeSet::new()),
        ..aegis_core::ClusterState::default()
    };
    let mut warnings = Vec::new();
    let mut read = 0;
    for (sink, found, count) in results {
        let mut found_state = sink.state;
        found_state.read_kinds = Some(sink.kinds);
        state.absorb(found_state);
        warnings.extend(found);
        read += count;
    }
    (state, warnings, read)
}

/// Decodes `units` into a sink whose lists have room for the objects of `room_for`.
fn decode_units(
    units: &[Unit<'_>],
    room_for: &[Unit<'_>],
    scope: &Scope,
) -> (ObjectSink, Vec<LoadWarning>, usize) {
    let mut sink = ObjectSink::new(scope.clone());
    let mut counts: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for unit in room_for {
        if let Unit::Item { kind, .. } = unit {
            *counts.entry(kind.as_str()).or_default() += 1;
        }
    }
    for (kind, count) in counts {
        sink.reserve(kind, count);
    }
    let mut warnings = Vec::new();
    let mut read = 0;
    for unit in units {
        let (location, result) = match unit {
            Unit::Item {
                location,
                api_version,
                kind,
                text,
            } => {
                read += 1;
                let result = Object::decode(api_version, kind, YamlItem(text)).map(|object| {
                    sink.push(object);
                });
                (location, result)
            }
            Unit::Document { location, text } => {
                let result = parse_yaml_document(text).and_then(|value| {
                    read += 1;
                    sink.add(value).map(|_| ())
                });
                (location, result)
            }
            Unit::Json { location, text } => {
                let result = serde_json::from_str::<Value>(text)
                    .map_err(|e| format!("invalid JSON: {e}"))
                    .and_then(|value| {
                        read += 1;
                        sink.add(value).map(|_| ())
                    });
                (location, result)
            }
        };
        if let Err(reason) = result {
            warnings.push(LoadWarning {
                location: location.clone(),
                reason,
            });
        }
    }
    (sink, warnings, read)
}

fn parse_yaml_document(text: &str) -> Result<Value, String> {
    let value: Value = match crate::yaml::from_str(text) {
        Some(value) => value,
        None => serde_yaml::from_str(text).map_err(|e| format!("invalid YAML: {e}"))?,
    };
    match value {
        Value::Object(_) => Ok(value),
        Value::Array(_) => Err("expected Kubernetes objects, found a YAML sequence".to_owned()),
        Value::String(_) => Err("expected Kubernetes objects, found a YAML string".to_owned()),
        _ => Err("expected Kubernetes objects, found a YAML scalar".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        let path = dir.join(name);
        fs::create_dir_all(path.parent().expect("has parent")).expect("mkdir");
        fs::write(path, text).expect("write");
    }

    /// Every YAML file of the project's fixtures and examples (real-world snapshots, kubectl
    /// dumps, the demo manifests), split as a snapshot load splits it: where each unit is, its
    /// text standing alone and, for a List item, its text as the List holds it.
    fn fixture_units() -> Vec<(String, String, Option<String>)> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                    out.push(path);
                }
            }
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut files = Vec::new();
        walk(&root.join("tests/fixtures"), &mut files);
        walk(&root.join("examples"), &mut files);
        let mut units = Vec::new();
        for file in files {
            let text = fs::read_to_string(&file).expect("readable");
            for document in split_documents(&text) {
                match list_items(document) {
                    Some(items) => {
                        for (index, item) in items.into_iter().enumerate() {
                            if let Unit::Item { location, text, .. } =
                                item_unit(&file.display().to_string(), index, item)
                            {
                                units.push((
                                    location,
                                    YamlItem(text).standalone(),
                                    Some(text.to_owned()),
                                ));
                            }
                        }
                    }
                    None => units.push((file.display().to_string(), document.to_owned(), None)),
                }
            }
        }
        units
    }

    /// The typed object the fast reader decodes straight from the text is the one the
    /// general parser's tree decodes to (options, numbers, quantities, times, int-or-string).
    fn typed_alike(location: &str, text: &str, item: Option<&str>, general: &Value) {
        fn check<T>(location: &str, text: &str, item: Option<&str>, general: &Value)
        where
            T: serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
        {
            let Ok(expected) = serde_json::from_value::<T>(general.clone()) else {
                return;
            };
            let read: Option<T> = match item {
                Some(item) => crate::yaml::from_item(item),
                None => crate::yaml::from_str(text),
            };
            assert_eq!(read.as_ref(), Some(&expected), "{location}");
        }
        use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
        use k8s_openapi::api::core::v1::{Event, Node, Pod, Service};
        use k8s_openapi::api::discovery::v1::EndpointSlice;
        match general.get("kind").and_then(Value::as_str) {
            Some("Pod") => check::<Pod>(location, text, item, general),
            Some("Deployment") => check::<Deployment>(location, text, item, general),
            Some("ReplicaSet") => check::<ReplicaSet>(location, text, item, general),
            Some("StatefulSet") => check::<StatefulSet>(location, text, item, general),
            Some("Event") => check::<Event>(location, text, item, general),
            Some("Node") => check::<Node>(location, text, item, general),
            Some("Service") => check::<Service>(location, text, item, general),
            Some("EndpointSlice") => check::<EndpointSlice>(location, text, item, general),
            _ => {}
        }
    }

    #[test]
    fn the_fast_yaml_reader_reads_every_fixture_as_the_general_parser_does() {
        let units = fixture_units();
        assert!(units.len() > 500, "{} units", units.len());
        // Written by hand with flow style or folded text, not as kubectl writes.
        let by_hand = |location: &str| {
            ["expect.yaml", "llm-hostile", "examples/"]
                .iter()
                .any(|part| location.contains(part))
        };
        let (mut fast, mut block) = (0, 0);
        let mut slow = Vec::new();
        for (location, text, item) in &units {
            let item = item.as_deref();
            let Ok(general) = serde_yaml::from_str::<Value>(text) else {
                continue;
            };
            let read = match item {
                Some(item) => crate::yaml::from_item::<Value>(item),
                None => crate::yaml::from_str::<Value>(text),
            };
            if !by_hand(location) {
                block += 1;
                if read.is_none() {
                    slow.push(location.as_str());
                }
            }
            if let Some(read) = read {
                fast += 1;
                assert_eq!(read, general, "{location}");
                typed_alike(location, text, item, &general);
            }
        }
        // The fast reader serves everything written as kubectl writes.
        assert!(fast > 900, "{fast} units read fast");
        assert!(
            slow.is_empty(),
            "{} of {block} block-style units not read fast: {:?}",
            slow.len(),
            &slow[..slow.len().min(15)]
        );
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
        assert_eq!(locations, ["bad.json", "broken.yaml", "wrongtype.yaml"]);
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
