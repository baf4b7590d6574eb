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
//! limit or trap), 126 (invalid module), 127 (module not found). Every command: 0 when stdout
//! is closed early (`| head`), 1 when it cannot start (wasm engine, async runtime).
//!
//! Errors are reported in one place: subcommands return [`CliResult`], and [`main`] prints
//! one `wasmhook: ` message and maps the error to its exit code ([`error`]).

pub mod cri;
pub mod error;
pub mod hook;
mod progress;
pub mod run;
pub mod validate;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use error::{CliError, CliResult};

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

/// `defer`: a subcommand's arguments are built only when it is the one invoked. clap builds
/// the whole tree before parsing otherwise, and `run`'s and `cri`'s arguments were a
/// measurable part of a one-shot `hook run`. The structs flattened into a subcommand's
/// arguments (`LimitArgs`, `PoolArgs`, `ManifestArgs`) carry plain comments, not doc
/// comments: a deferred subcommand applies a flattened struct's doc comment last, as its
/// own about (clap-rs/clap#3127), and `wasmhook run --help` would describe hook limits.
#[derive(Subcommand, Debug)]
#[command(defer = true)]
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
#[command(defer = true)]
pub enum HookCommand {
    /// Run one hook module with the given arguments, directories, environment and limits.
    Run(hook::HookRunArgs),
}

pub fn main() -> ExitCode {
    skip_error_backtraces();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    init_tracing();
    let result = match cli.command {
        Command::Run(args) => run::run(args, &cli.cache),
        Command::Validate(args) => validate::validate(args, &cli.cache),
        Command::Hook(HookCommand::Run(args)) => hook::hook_run(args, &cli.cache),
        Command::Compile(args) => hook::compile(args, &cli.cache),
        Command::Cri(args) => cri::cri(args, &cli.cache),
    };
    result.unwrap_or_else(|e| e.report())
}

/// With `RUST_BACKTRACE=1` (often set on nodes to get a panic's backtrace), every wasmtime
/// error would capture a std backtrace, and a hook's `proc_exit` is one: a hook call of a few
/// µs then takes tens. wasmhook never prints those backtraces (errors show their cause chain,
/// `{e:#}`; traps their wasm backtrace), so library errors skip the capture unless
/// `RUST_LIB_BACKTRACE` says otherwise. Panics keep theirs. Runs first in `main`, while the
/// process has one thread.
fn skip_error_backtraces() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
}

/// Logs go to stderr, filtered by `RUST_LOG` (default, and when `RUST_LOG` does not parse:
/// warnings).
fn init_tracing() {
    let fmt = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour only for a terminal: escape codes in a log file or a CI capture are noise.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // The default needs no `EnvFilter`: parsing directives is a measurable part of a
    // one-shot `hook run`, and a plain level filter passes exactly the same events.
    let _ = match tracing_subscriber::EnvFilter::try_from_default_env() {
        Ok(filter) => fmt.with_env_filter(filter).try_init(),
        Err(_) => fmt
            .with_max_level(tracing_subscriber::filter::LevelFilter::WARN)
            .try_init(),
    };
}

/// The wasm runtime of a command, or the error that stops it.
pub(crate) fn runtime(
    config: crate::wasm::RuntimeConfig,
) -> Result<crate::wasm::HookRuntime, CliError> {
    crate::wasm::HookRuntime::new(config)
        .map_err(|e| CliError::Failed(format!("cannot create the wasm engine: {e}")))
}

/// SIGINT and SIGTERM, caught from the moment [`StopSignals::install`] returns, not from the
/// first poll of a future: a command may already be serving calls or starting pods on other
/// worker threads before it waits for a signal, and a signal then must be delivered here,
/// never by its default (fatal) action. Must be called inside the tokio runtime.
pub(crate) struct StopSignals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Install the handlers; `None` when the process cannot (then only a kill stops it).
    pub(crate) fn install() -> Option<StopSignals> {
        use tokio::signal::unix::{signal, SignalKind};
        Some(StopSignals {
            int: signal(SignalKind::interrupt()).ok()?,
            term: signal(SignalKind::terminate()).ok()?,
        })
    }

    /// The next SIGINT or SIGTERM.
    pub(crate) async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}

/// Run a command's `future` to its end on a fresh async runtime (`multi`: a worker per core,
/// else the calling thread only), then shut the runtime down without waiting for its
/// blocking threads.
///
/// Tasks still spawned are dropped either way, as when a runtime is dropped. The difference
/// is the blocking threads: every clean-up of a command is awaited inside its future, so what
/// can still run there is work whose caller gave up: the host call of a hook stopped at its
/// timeout (a WASI `open` of a FIFO without a reader never returns), or a compile no one
/// waits for. Dropping the runtime would wait for those: the command would report the
/// timeout and then hang.
pub(crate) fn block_on<F: std::future::Future>(
    multi: bool,
    future: F,
) -> Result<F::Output, CliError> {
    let mut b = if multi {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let runtime = b
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(format!("cannot start the async runtime: {e}")))?;
    let output = runtime.block_on(future);
    runtime.shutdown_background();
    Ok(output)
}
