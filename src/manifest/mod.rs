//! Pod manifests: parsing (YAML/JSON, multi-document), Kubernetes API defaults, validation
//! with the API server's field paths and messages, and wasmhook's own checks (hook modules,
//! supported volumes, `wasmhook.dev/...` annotations).
//!
//! The pipeline for one file is [`load_file`] (parse, type-check, reject or warn about unknown
//! fields, apply defaults) then [`validate`] per pod. [`check_files`] does both for many files
//! and renders every problem as one line; it is what `wasmhook validate` and `wasmhook run`
//! use.
//!
//! Invariants:
//! - Nothing here panics on any input (no unwrap on user data, checked arithmetic).
//! - [`ManifestPod::pod`] always has the API defaults applied (see [`defaults`]): namespace,
//!   uid, `restartPolicy`, `terminationGracePeriodSeconds`, httpGet `path`/`scheme`, ...
//! - Validation runs on the defaulted pod, as the API server validates after defaulting.
//!   In particular `sleep.seconds` is checked against the defaulted grace period (30 when
//!   unset), which is the verdict `kubectl apply` gives.
//! - Kubernetes messages are the API server's, byte for byte (`<path>: <kind>: <detail>`);
//!   wasmhook's own checks use the same shape.

pub mod annotations;
mod defaults;
pub(crate) use defaults::default_pull_policy;
mod names;
mod parse;
pub mod signals;
mod units;
mod validate;

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;

use crate::hook::{ExecPolicy, HostCommand};

pub use units::{parse_go_duration, parse_quantity_bytes};
pub use validate::{resolve_module, validate};

/// What to do with fields the Pod schema does not know (`kubectl --validate=strict|warn`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UnknownFields {
    /// Reject the document, like `kubectl --validate=strict` (the default).
    #[default]
    Error,
    /// Keep going and report them as warnings, like `kubectl --validate=warn`.
    Warn,
}

/// Options for loading and validating manifests.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    pub unknown_fields: UnknownFields,
    /// Where exec hook modules are looked up after the manifest's own directory.
    pub hooks_dir: Option<PathBuf>,
    /// The operator's exec policy (`--exec-policy`); a pod's annotation may only tighten it.
    pub exec_policy: ExecPolicy,
    /// Whether a `command[0]` not found on the host may still be a module in the container's
    /// image (the runc backend looks there first): then it is not an error here.
    pub modules_in_containers: bool,
}

/// One Pod from a manifest file, with API defaults applied.
#[derive(Clone, Debug)]
pub struct ManifestPod {
    /// The pod, defaults applied (namespace, uid, restartPolicy, grace, httpGet path/scheme...).
    pub pod: Pod,
    /// The file it came from, as the caller named it.
    pub source: PathBuf,
    /// 1-based index of the YAML/JSON document in the file (empty documents count too).
    pub document: usize,
    /// Fully rendered warnings (`FILE: pod "NAME": unknown field "spec.x"`).
    pub warnings: Vec<String>,
}

impl ManifestPod {
    /// `metadata.name` (empty if the manifest has none; validation reports that).
    pub fn name(&self) -> &str {
        self.pod.metadata.name.as_deref().unwrap_or("")
    }

    /// `metadata.namespace` (defaulted to `default`).
    pub fn namespace(&self) -> &str {
        self.pod.metadata.namespace.as_deref().unwrap_or("default")
    }

    /// The directory relative exec modules are resolved against first.
    pub fn manifest_dir(&self) -> &Path {
        match self.source.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        }
    }

    /// Prefix a message with the file and the pod: `pod.yaml: pod "web": <msg>`, or
    /// `pod.yaml: document 2: <msg>` when the pod has no name.
    pub fn render(&self, msg: &str) -> String {
        render_line(&self.source, self.document, Some(self.name()), msg)
    }
}

fn render_line(source: &Path, document: usize, pod: Option<&str>, msg: &str) -> String {
    match pod {
        Some(name) if !name.is_empty() => {
            format!("{}: pod {}: {msg}", source.display(), names::go_quote(name))
        }
        _ => format!("{}: document {document}: {msg}", source.display()),
    }
}

/// The offending value of an [`ErrorKind`], printed as Go's `field.Error` prints it: strings
/// `%q`-quoted, integers bare.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BadValue {
    Str(String),
    Int(i64),
}

impl fmt::Display for BadValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadValue::Str(s) => f.write_str(&names::go_quote(s)),
            BadValue::Int(n) => write!(f, "{n}"),
        }
    }
}

/// The kinds of `k8s.io/apimachinery/pkg/util/validation/field.Error`. Display gives the
/// API server's text, with the bad value where Go prints one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    Required,
    Forbidden,
    Invalid(BadValue),
    NotSupported(BadValue),
    Duplicate(BadValue),
    NotFound(BadValue),
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Required => f.write_str("Required value"),
            ErrorKind::Forbidden => f.write_str("Forbidden"),
            ErrorKind::Invalid(v) => write!(f, "Invalid value: {v}"),
            ErrorKind::NotSupported(v) => write!(f, "Unsupported value: {v}"),
            ErrorKind::Duplicate(v) => write!(f, "Duplicate value: {v}"),
            ErrorKind::NotFound(v) => write!(f, "Not found: {v}"),
        }
    }
}

/// One validation error. Display is `<path>: <kind>[: <detail>]`, exactly as the API server
/// renders it, e.g. `spec.containers[0].lifecycle.postStart.httpGet.port: Invalid value:
/// 70000: must be between 1 and 65535, inclusive`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub kind: ErrorKind,
    pub detail: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.kind)?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

impl FieldError {
    pub fn new(path: impl Into<String>, kind: ErrorKind, detail: impl Into<String>) -> Self {
        FieldError {
            path: path.into(),
            kind,
            detail: detail.into(),
        }
    }

    pub fn required(path: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(path, ErrorKind::Required, detail)
    }

    pub fn forbidden(path: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(path, ErrorKind::Forbidden, detail)
    }

    pub fn invalid(path: impl Into<String>, value: BadValue, detail: impl Into<String>) -> Self {
        Self::new(path, ErrorKind::Invalid(value), detail)
    }

    /// `field.NotSupported`: the detail lists the supported values, each `%q`-quoted.
    pub fn not_supported(path: impl Into<String>, value: &str, supported: &[&str]) -> Self {
        let detail = if supported.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = supported.iter().map(|s| names::go_quote(s)).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self::new(
            path,
            ErrorKind::NotSupported(BadValue::Str(value.to_string())),
            detail,
        )
    }

    pub fn duplicate(path: impl Into<String>, value: &str) -> Self {
        Self::new(
            path,
            ErrorKind::Duplicate(BadValue::Str(value.to_string())),
            "",
        )
    }

    pub fn not_found(path: impl Into<String>, value: &str, detail: impl Into<String>) -> Self {
        Self::new(
            path,
            ErrorKind::NotFound(BadValue::Str(value.to_string())),
            detail,
        )
    }
}

/// A problem that stops one document from becoming a [`ManifestPod`]: a type error, an
/// unknown field (strict mode), a wrong `kind`/`apiVersion`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentProblem {
    /// 1-based document index in the file.
    pub document: usize,
    /// `metadata.name` when the document has a readable one.
    pub pod: Option<String>,
    /// E.g. `spec.containers[1].lifecycle.preStop.httpGet.port: invalid type: ...` or
    /// `unknown field "spec.containers[0].lifecyle"`.
    pub message: String,
}

/// Why a manifest file could not be loaded. Display names the file, and either the line and
/// column (syntax errors) or the document/pod and field path; one line per problem.
#[derive(Debug)]
pub enum ManifestError {
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// YAML/JSON syntax. `location` is 1-based (line, column) when the parser knows it.
    Syntax {
        path: PathBuf,
        location: Option<(usize, usize)>,
        message: String,
    },
    /// Parsed, but one or more documents are not acceptable Pods.
    Documents {
        path: PathBuf,
        problems: Vec<DocumentProblem>,
    },
}

impl ManifestError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            ManifestError::Io { path, .. }
            | ManifestError::Syntax { path, .. }
            | ManifestError::Documents { path, .. } => path,
        }
    }

    /// Every problem as one fully rendered line (`FILE:LINE:COL: msg`, `FILE: pod "x": msg`).
    pub fn lines(&self) -> Vec<String> {
        match self {
            ManifestError::Io { path, source } => vec![format!("{}: {source}", path.display())],
            ManifestError::Syntax {
                path,
                location: Some((line, col)),
                message,
            } => vec![format!("{}:{line}:{col}: {message}", path.display())],
            ManifestError::Syntax {
                path,
                location: None,
                message,
            } => vec![format!("{}: {message}", path.display())],
            ManifestError::Documents { path, problems } => problems
                .iter()
                .map(|p| render_line(path, p.document, p.pod.as_deref(), &p.message))
                .collect(),
        }
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lines().join("\n"))
    }
}

impl std::error::Error for ManifestError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ManifestError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Read and parse a manifest file (see [`load_str`]).
pub fn load_file(path: &Path, opts: &LoadOptions) -> Result<Vec<ManifestPod>, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    load_str(&text, path, opts)
}

/// Parse manifest text: one or more Pod documents, YAML (any extension) or JSON (`.json`).
/// Empty documents are skipped. Applies API defaults. Type errors, unknown fields (in
/// [`UnknownFields::Error`] mode), and non-Pod documents fail the whole file, with every
/// problem of every document listed. `source` names the file in messages and anchors relative
/// module paths.
pub fn load_str(
    text: &str,
    source: &Path,
    opts: &LoadOptions,
) -> Result<Vec<ManifestPod>, ManifestError> {
    parse::load(text, source, opts)
}

/// The outcome of [`check_files`].
#[derive(Clone, Debug, Default)]
pub struct CheckReport {
    /// The pods that loaded and validated cleanly, in file and document order.
    pub pods: Vec<ManifestPod>,
    /// Fully rendered lines: `FILE: pod "NAME": path: kind: detail`, `FILE:LINE:COL: msg`...
    pub errors: Vec<String>,
    /// Fully rendered warnings (unknown fields in warn mode).
    pub warnings: Vec<String>,
}

impl CheckReport {
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }

    /// `FILE: pod "NAME" is valid` for every valid pod.
    pub fn valid_lines(&self) -> Vec<String> {
        self.pods
            .iter()
            .map(|p| {
                format!(
                    "{}: pod {} is valid",
                    p.source.display(),
                    names::go_quote(p.name())
                )
            })
            .collect()
    }
}

/// Load and validate many files: what both `wasmhook validate` and `wasmhook run` use.
/// `check_module` is called at most once per resolved module path. Besides per-pod
/// validation, two pods with the same namespace and name are an error (the API server would
/// answer `AlreadyExists` to the second).
pub fn check_files(
    paths: &[PathBuf],
    opts: &LoadOptions,
    check_module: &dyn Fn(&Path) -> Result<HostCommand, String>,
) -> CheckReport {
    let cache: RefCell<HashMap<PathBuf, Result<HostCommand, String>>> =
        RefCell::new(HashMap::new());
    let cached = |p: &Path| -> Result<HostCommand, String> {
        // `a/../hooks/x.wasm` and `hooks/x.wasm` are one module: key by the real path.
        let key = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let hit = cache.borrow().get(&key).cloned();
        if let Some(r) = hit {
            return r;
        }
        let r = check_module(p);
        cache.borrow_mut().insert(key, r.clone());
        r
    };
    let mut report = CheckReport::default();
    let mut seen: HashMap<(String, String), (PathBuf, usize)> = HashMap::new();
    for path in paths {
        match load_file(path, opts) {
            Err(e) => report.errors.extend(e.lines()),
            Ok(pods) => {
                for mp in pods {
                    report.warnings.extend(mp.warnings.iter().cloned());
                    let mut lines: Vec<String> = validate(&mp, opts, &cached)
                        .iter()
                        .map(|e| mp.render(&e.to_string()))
                        .collect();
                    if lines.is_empty() {
                        let key = (mp.namespace().to_string(), mp.name().to_string());
                        if let Some((first, doc)) = seen.get(&key) {
                            let err = FieldError::new(
                                "metadata.name",
                                ErrorKind::Duplicate(BadValue::Str(mp.name().to_string())),
                                format!(
                                    "pod already defined in {} (document {doc})",
                                    first.display()
                                ),
                            );
                            lines.push(mp.render(&err.to_string()));
                        } else {
                            seen.insert(key, (mp.source.clone(), mp.document));
                        }
                    }
                    if lines.is_empty() {
                        report.pods.push(mp);
                    } else {
                        report.errors.extend(lines);
                    }
                }
            }
        }
    }
    report
}
