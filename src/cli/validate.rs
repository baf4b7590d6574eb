//! `wasmhook validate FILE...`: the verdict the API server (plus wasmhook's own checks) would
//! give. Exit 0 when every pod is valid, 2 when any file is invalid or unreadable.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use super::error::{warn, CliResult, Stdout};
use super::hook::CacheArgs;
use crate::handlers::exec::check_host_command;
use crate::hook::ExecPolicy;
use crate::manifest::{check_files, CheckReport, LoadOptions, UnknownFields};
use crate::wasm::{Allocator, HookRuntime, Limits};

// Manifest options shared by `validate` and `run`. (Not a doc comment: see
// `super::Command`.)
#[derive(Args, Debug, Clone)]
pub struct ManifestArgs {
    /// Where exec hook modules are looked up after the manifest's own directory.
    #[arg(long, value_name = "DIR")]
    pub hooks_dir: Option<PathBuf>,
    /// Report unknown manifest fields as warnings instead of errors (`kubectl --validate=warn`).
    #[arg(long)]
    pub allow_unknown_fields: bool,
    /// Which exec hooks and probes may run natively: `auto` runs a command that is not a
    /// wasm module in the container, as the kubelet does; `wasm-only` refuses it. A pod's
    /// `wasmhook.dev/exec-policy` annotation can only make this stricter.
    #[arg(long, value_name = "POLICY", value_parser = parse_exec_policy, default_value = "auto")]
    pub exec_policy: ExecPolicy,
}

impl ManifestArgs {
    /// The load options; `modules_in_containers` when the backend looks up `command[0]` in
    /// the container's image first (runc).
    pub fn load_options(&self, modules_in_containers: bool) -> LoadOptions {
        LoadOptions {
            unknown_fields: if self.allow_unknown_fields {
                UnknownFields::Warn
            } else {
                UnknownFields::Error
            },
            hooks_dir: self.hooks_dir.clone(),
            exec_policy: self.exec_policy,
            modules_in_containers,
        }
    }
}

fn parse_exec_policy(s: &str) -> Result<ExecPolicy, String> {
    ExecPolicy::parse(s)
        .ok_or_else(|| format!("expected one of {}", ExecPolicy::KEYWORDS.join(", ")))
}

#[derive(Args, Debug)]
pub struct ValidateArgs {
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub manifest: ManifestArgs,
}

/// Load and validate `files`, compiling every exec hook module with `rt`.
pub fn check(files: &[PathBuf], opts: &LoadOptions, rt: &HookRuntime) -> CheckReport {
    check_files(files, opts, &|p: &Path| check_host_command(rt, p))
}

/// The verdict is the output: one line per valid pod, then one per error, on stdout.
/// Warnings (unknown fields with `--allow-unknown-fields`) go to stderr.
pub fn validate(args: ValidateArgs, cache: &CacheArgs) -> CliResult {
    let rt = super::runtime(cache.runtime_config(Allocator::OnDemand, Limits::default()))?;
    // Judged as for the process backend: a module must be on the host.
    let report = check(&args.files, &args.manifest.load_options(false), &rt);
    report.warnings.iter().for_each(warn);
    let mut out = Stdout::lock();
    for line in report.valid_lines() {
        out.line(line)?;
    }
    for e in &report.errors {
        out.line(e)?;
    }
    out.flush()?;
    Ok(if report.is_valid() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
