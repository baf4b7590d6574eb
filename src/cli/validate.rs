//! `wasmhook validate FILE...`: the verdict the API server (plus wasmhook's own checks) would
//! give. Exit 0 when every pod is valid, 2 when any file is invalid or unreadable.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use super::error::{warn, CliResult, Stdout};
use super::hook::CacheArgs;
use crate::manifest::{check_files, CheckReport, LoadOptions, UnknownFields};
use crate::wasm::{Allocator, HookRuntime, Limits};

/// Manifest options shared by `validate` and `run`.
#[derive(Args, Debug, Clone)]
pub struct ManifestArgs {
    /// Where exec hook modules are looked up after the manifest's own directory.
    #[arg(long, value_name = "DIR")]
    pub hooks_dir: Option<PathBuf>,
    /// Report unknown manifest fields as warnings instead of errors (`kubectl --validate=warn`).
    #[arg(long)]
    pub allow_unknown_fields: bool,
}

impl ManifestArgs {
    pub fn load_options(&self) -> LoadOptions {
        LoadOptions {
            unknown_fields: if self.allow_unknown_fields {
                UnknownFields::Warn
            } else {
                UnknownFields::Error
            },
            hooks_dir: self.hooks_dir.clone(),
        }
    }
}

#[derive(Args, Debug)]
pub struct ValidateArgs {
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub manifest: ManifestArgs,
}

/// Load and validate `files`, compiling every exec hook module with `rt`.
pub fn check(files: &[PathBuf], manifest: &ManifestArgs, rt: &HookRuntime) -> CheckReport {
    let check_module = |p: &Path| rt.load_file(p).map(drop).map_err(|e| e.to_string());
    check_files(files, &manifest.load_options(), &check_module)
}

/// The verdict is the output: one line per valid pod, then one per error, on stdout.
/// Warnings (unknown fields with `--allow-unknown-fields`) go to stderr.
pub fn validate(args: ValidateArgs, cache: &CacheArgs) -> CliResult {
    let rt = super::runtime(cache.runtime_config(Allocator::OnDemand, Limits::default()))?;
    let report = check(&args.files, &args.manifest, &rt);
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
