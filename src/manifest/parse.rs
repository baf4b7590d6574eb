//! Text → documents → typed `Pod`s.
//!
//! Each document is first parsed into a generic `serde_yaml_ng::Value` (JSON documents too,
//! streamed through `serde_json`'s parser), so syntax errors carry a line and column, mapping
//! order is kept (unknown fields are reported in document order), YAML merge keys work, and
//! the rest of the pipeline is format-independent. The value is then deserialized into
//! `k8s_openapi::api::core::v1::Pod` through `serde_ignored` (unknown fields, reported with
//! their Kubernetes path) and `serde_path_to_error` (the path of a type error).
//!
//! Invariants: documents are numbered from 1 in stream order, empty ones included (and
//! skipped); a syntax error stops the stream (nothing after it can be trusted); all other
//! problems are collected for every document before failing.

use std::path::Path;

use k8s_openapi::api::core::v1::Pod;
use serde::Deserialize;
use serde_yaml_ng::Value;

use super::{
    defaults, names, DocumentProblem, LoadOptions, ManifestError, ManifestPod, UnknownFields,
};

/// See [`super::load_str`].
pub(super) fn load(
    text: &str,
    source: &Path,
    opts: &LoadOptions,
) -> Result<Vec<ManifestPod>, ManifestError> {
    let is_json = source
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let docs = if is_json {
        json_documents(text, source)?
    } else {
        yaml_documents(text, source)?
    };
    let mut pods = Vec::new();
    let mut problems = Vec::new();
    for (document, value) in docs {
        let value = match value {
            Ok(Value::Null) => continue,
            Ok(v) => v,
            Err(message) => {
                problems.push(DocumentProblem {
                    document,
                    pod: None,
                    message,
                });
                continue;
            }
        };
        let pod_name = value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(|n| n.as_str())
            .map(str::to_string);
        let problem = |message: String| DocumentProblem {
            document,
            pod: pod_name.clone(),
            message,
        };
        let header = check_header(&value);
        if !header.is_empty() {
            problems.extend(header.into_iter().map(problem));
            continue;
        }
        let (result, unknown) = deserialize_pod(value);
        let unknown: Vec<String> = unknown
            .into_iter()
            .map(|p| format!("unknown field {}", names::go_quote(&p)))
            .collect();
        let mut warnings = Vec::new();
        match opts.unknown_fields {
            UnknownFields::Error => problems.extend(unknown.iter().cloned().map(problem)),
            UnknownFields::Warn => warnings = unknown,
        }
        match result {
            Err(message) => problems.push(problem(message)),
            Ok(mut pod) => {
                defaults::apply(&mut pod, source, document);
                let mut mp = ManifestPod {
                    pod,
                    source: source.to_path_buf(),
                    document,
                    warnings: Vec::new(),
                };
                mp.warnings = warnings.iter().map(|w| mp.render(w)).collect();
                pods.push(mp);
            }
        }
    }
    if problems.is_empty() {
        Ok(pods)
    } else {
        Err(ManifestError::Documents {
            path: source.to_path_buf(),
            problems,
        })
    }
}

type Documents = Vec<(usize, Result<Value, String>)>;

fn json_documents(text: &str, source: &Path) -> Result<Documents, ManifestError> {
    let mut docs = Vec::new();
    for (i, value) in serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .enumerate()
    {
        match value {
            Ok(v) => docs.push((i + 1, Ok(v))),
            Err(e) => {
                let location = (e.line() > 0).then(|| (e.line(), e.column()));
                return Err(ManifestError::Syntax {
                    path: source.to_path_buf(),
                    location,
                    message: strip_json_location(&e.to_string()),
                });
            }
        }
    }
    Ok(docs)
}

fn yaml_documents(text: &str, source: &Path) -> Result<Documents, ManifestError> {
    let mut docs = Vec::new();
    for (i, de) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let mut value = match serde_yaml_ng::Value::deserialize(de) {
            Ok(v) => v,
            Err(e) => {
                let location = e.location().map(|l| (l.line(), l.column()));
                return Err(ManifestError::Syntax {
                    path: source.to_path_buf(),
                    location,
                    message: strip_yaml_location(&e.to_string()),
                });
            }
        };
        let merged = value
            .apply_merge()
            .map(|()| value)
            .map_err(|e| e.to_string());
        docs.push((i + 1, merged));
    }
    Ok(docs)
}

/// serde_yaml_ng appends ` at line L column C` (and sometimes `, while parsing ...`); we
/// print the location ourselves as `FILE:L:C:`.
fn strip_yaml_location(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => {
            let (head, tail) = msg.split_at(i);
            // Keep anything after the location clause (e.g. ", while parsing a block mapping").
            let rest = tail
                .find(", ")
                .map(|j| &tail[j..])
                .filter(|r| !r.starts_with(", column"))
                .unwrap_or("");
            format!("{head}{rest}")
        }
        None => msg.to_string(),
    }
}

fn strip_json_location(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// `apiVersion: v1` and `kind: Pod`, checked before typing so the message is Kubernetes-like
/// (`kind not set`, as kubectl says) rather than a serde error.
fn check_header(value: &Value) -> Vec<String> {
    let Some(obj) = value.as_mapping() else {
        return vec![format!(
            "expected a Pod object (a mapping with apiVersion, kind, metadata, spec), found {}",
            json_kind(value)
        )];
    };
    let mut out = Vec::new();
    match obj.get("apiVersion") {
        None | Some(Value::Null) => out.push("apiVersion not set".to_string()),
        Some(Value::String(s)) if s == "v1" => {}
        Some(Value::String(s)) => out.push(format!(
            "apiVersion: Unsupported value: {}: supported values: \"v1\" (wasmhook runs v1 Pods)",
            names::go_quote(s)
        )),
        Some(v) => out.push(format!(
            "apiVersion: must be a string, found {}",
            json_kind(v)
        )),
    }
    match obj.get("kind") {
        None | Some(Value::Null) => out.push("kind not set".to_string()),
        Some(Value::String(s)) if s == "Pod" => {}
        Some(Value::String(s)) => out.push(format!(
            "kind: Unsupported value: {}: supported values: \"Pod\" (wasmhook runs Pods)",
            names::go_quote(s)
        )),
        Some(v) => out.push(format!("kind: must be a string, found {}", json_kind(v))),
    }
    out
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// Deserialize a Pod, returning the result (type errors as `path: message`) and the paths of
/// all unknown fields seen before any error.
fn deserialize_pod(value: Value) -> (Result<Pod, String>, Vec<String>) {
    let mut unknown = Vec::new();
    let mut track = serde_path_to_error::Track::new();
    let result = {
        let de = serde_path_to_error::Deserializer::new(value, &mut track);
        serde_ignored::deserialize(de, |path| unknown.push(ignored_path(&path)))
    };
    let result = result.map_err(|e| {
        let path = k8s_path(&track.path());
        if path.is_empty() {
            e.to_string()
        } else {
            format!("{path}: {e}")
        }
    });
    (result, unknown)
}

/// Append a map key the way `field.Path` does: `.name` for field names, `[key]` for keys
/// that are not identifiers (annotation and label keys).
fn push_key(out: &mut String, key: &str) {
    if !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(key);
    } else {
        out.push('[');
        out.push_str(key);
        out.push(']');
    }
}

/// `serde_path_to_error` path → `spec.containers[1].lifecycle.preStop.httpGet.port`.
fn k8s_path(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            serde_path_to_error::Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            serde_path_to_error::Segment::Map { key } => push_key(&mut out, key),
            serde_path_to_error::Segment::Enum { variant } => push_key(&mut out, variant),
            serde_path_to_error::Segment::Unknown => push_key(&mut out, "?"),
        }
    }
    out
}

/// `serde_ignored` path → the same Kubernetes form.
fn ignored_path(path: &serde_ignored::Path<'_>) -> String {
    fn walk(path: &serde_ignored::Path<'_>, out: &mut String) {
        match path {
            serde_ignored::Path::Root => {}
            serde_ignored::Path::Seq { parent, index } => {
                walk(parent, out);
                out.push_str(&format!("[{index}]"));
            }
            serde_ignored::Path::Map { parent, key } => {
                walk(parent, out);
                push_key(out, key);
            }
            serde_ignored::Path::Some { parent }
            | serde_ignored::Path::NewtypeStruct { parent }
            | serde_ignored::Path::NewtypeVariant { parent } => walk(parent, out),
        }
    }
    let mut out = String::new();
    walk(path, &mut out);
    out
}
