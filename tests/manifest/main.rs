//! Pod manifests: parsing, defaults, validation messages (exact API server text), wasmhook's
//! own checks, annotations, and a no-panic property test.

mod annotations;
mod api_server;
mod files;
mod fuzz;
mod parsing;

use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::prelude::*;
use wasmhook::handlers::{HookKind, HookSettings, HttpStatusMode};
use wasmhook::hook::{ExecPolicy, HookNetwork, HostCommand};
use wasmhook::manifest::annotations::{exec_policy, hook_settings};
use wasmhook::manifest::{
    check_files, load_file, load_str, resolve_module, validate, LoadOptions, ManifestError,
    UnknownFields,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/manifests")
}

/// The tests' stand-in for the wasm compiler: anything named `*broken*` fails to compile.
fn checker(p: &Path) -> Result<HostCommand, String> {
    if p.to_string_lossy().contains("broken") {
        Err("failed to compile: expected `(`".to_string())
    } else if wasmhook::wasm::is_module_file(p) {
        Ok(HostCommand::Module)
    } else {
        Ok(HostCommand::Native)
    }
}

/// Load `yaml` as if it were `fixtures/pod.yaml` and validate it; every problem rendered.
fn errors_with(yaml: &str, opts: &LoadOptions) -> Vec<String> {
    match load_str(yaml, &fixtures().join("pod.yaml"), opts) {
        Err(e) => e.lines(),
        Ok(pods) => pods
            .iter()
            .flat_map(|p| {
                validate(p, opts, &checker)
                    .into_iter()
                    .map(|e| p.render(&e.to_string()))
                    .collect::<Vec<_>>()
            })
            .collect(),
    }
}

fn errors(yaml: &str) -> Vec<String> {
    errors_with(yaml, &LoadOptions::default())
}

/// A pod `web` whose single container `app` gets `extra` (flow-style YAML lines, indented
/// by the caller as container fields) and whose spec gets `spec_extra`.
fn pod(container_extra: &str, spec_extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n{spec_extra}  containers:\n  - name: app\n    image: nginx\n{container_extra}"
    )
}

/// Strip the `FILE: ` prefix so expectations stay readable.
fn rel(lines: Vec<String>) -> Vec<String> {
    let prefix = format!("{}: ", fixtures().join("pod.yaml").display());
    lines
        .into_iter()
        .map(|l| l.strip_prefix(&prefix).map(str::to_string).unwrap_or(l))
        .collect()
}

const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
