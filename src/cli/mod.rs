//! The `wasmhook` command line: a thin layer over the library.
//!
//! | command | what | module |
//! |---|---|---|
//! | `wasmhook run FILE...` | run Pod manifests, print events | [`run`] |
//! | `wasmhook validate FILE...` | check manifests as the API server would | [`validate`] |
//! | `wasmhook hook run MODULE [ARGS]` | run one hook by hand | [`hook`] |
//! | `wasmhook compile MODULE` | precompile a module to `.cwasm` | [`hook`] |
//! | `wasmhook cri` | CRI proxy in front of containerd: wasm `ExecSync` on nodes | [`cri`] |
//!
//! Exit codes: `run` 0 (pod succeeded or stopped cleanly), 1 (pod failed), 2 (invalid manifest
//! or usage); `validate` 0 or 2; `hook run` the hook's exit code, or 124 (timeout), 125 (other
//! limit or trap), 126 (invalid module), 127 (module not found).

pub mod cri;
pub mod hook;
pub mod run;
pub mod validate;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "wasmhook",
    version,
    about = "Kubernetes lifecycle hooks with sandboxed WebAssembly exec handlers",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub cache: hook::CacheArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run Pod manifests: start containers, fire hooks, print Kubernetes-style events.
    Run(run::RunArgs),
    /// Check Pod manifests as the API server (and wasmhook) would.
    Validate(validate::ValidateArgs),
    /// Work with single hooks.
    #[command(subcommand)]
    Hook(HookCommand),
    /// Precompile a hook module to a `.cwasm` file.
    Compile(hook::CompileArgs),
    /// CRI proxy for Kubernetes nodes: relay the kubelet's calls to containerd and run
    /// `ExecSync` of wasm modules (exec hooks and probes) in the sandbox.
    Cri(cri::CriArgs),
}

#[derive(Subcommand, Debug)]
pub enum HookCommand {
    /// Run one hook module with the given arguments, directories, environment and limits.
    Run(hook::HookRunArgs),
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    init_tracing();
    match cli.command {
        Command::Run(args) => run::run(args, &cli.cache),
        Command::Validate(args) => validate::validate(args, &cli.cache),
        Command::Hook(HookCommand::Run(args)) => hook::hook_run(args, &cli.cache),
        Command::Compile(args) => hook::compile(args, &cli.cache),
        Command::Cri(args) => cri::cri(args, &cli.cache),
    }
}

/// Logs go to stderr, filtered by `RUST_LOG` (default: warnings).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only for a terminal: escape codes in a log file or a CI capture are noise.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Print `wasmhook: <msg>` to stderr and return `code`.
pub(crate) fn fail(msg: impl std::fmt::Display, code: u8) -> ExitCode {
    eprintln!("wasmhook: {msg}");
    ExitCode::from(code)
}
