//! `wasmhook hook run` and `wasmhook compile`: one hook by hand.
//!
//! `hook run` is a one-shot process, so it uses the on-demand allocator (the pooling
//! allocator's set-up would cost more than the hook) and the disk cache (a second run
//! deserializes instead of compiling).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::error::{message, CliError, CliResult, Stdout};
use crate::hook::HookNetwork;
use crate::manifest::{parse_go_duration, parse_quantity_bytes};
use crate::wasm::{
    default_cache_dir, Allocator, ExecOutcome, ExecStatus, HookRuntime, Invocation, Limits,
    LoadError, Preopen, RuntimeConfig,
};

/// Exit codes of `hook run` besides the hook's own, as `timeout(1)` and shells use them.
pub mod exit {
    pub const TIMED_OUT: u8 = 124;
    pub const LIMIT_OR_TRAP: u8 = 125;
    pub const INVALID_MODULE: u8 = 126;
    pub const NOT_FOUND: u8 = 127;
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    #[default]
    Text,
    Json,
}

/// Options shared by every command that compiles or loads modules.
#[derive(Args, Debug, Clone)]
pub struct CacheArgs {
    /// Directory of the compiled-module cache [default: $XDG_CACHE_HOME/wasmhook]
    #[arg(long, value_name = "DIR", global = true)]
    pub cache_dir: Option<PathBuf>,
    /// Do not read or write the compiled-module cache.
    #[arg(long, global = true)]
    pub no_cache: bool,
    /// Accept precompiled `.cwasm` files (deserializing them is unsafe: only trusted files).
    #[arg(long, global = true)]
    pub allow_precompiled: bool,
}

impl CacheArgs {
    pub fn runtime_config(&self, allocator: Allocator, default_limits: Limits) -> RuntimeConfig {
        RuntimeConfig {
            allocator,
            cache_dir: if self.no_cache {
                None
            } else {
                self.cache_dir.clone().or_else(default_cache_dir)
            },
            allow_precompiled: self.allow_precompiled,
            default_limits,
        }
    }
}

// The instance pool of a long-running command (`run`, `cri`). (Not a doc comment: see
// `super::Command`.)
#[derive(Args, Debug, Clone)]
pub struct PoolArgs {
    /// Wasm hooks that run at once (the instance pool's size); more wait for a slot.
    #[arg(long, value_name = "N", default_value_t = crate::wasm::DEFAULT_POOL_SIZE,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_concurrent_hooks: u32,
}

impl PoolArgs {
    /// A pooling runtime of this size, with `cache`'s settings and `limits` as defaults.
    pub fn runtime(&self, cache: &CacheArgs, limits: Limits) -> Result<HookRuntime, CliError> {
        super::runtime(cache.runtime_config(
            Allocator::Pooling {
                max_instances: self.max_concurrent_hooks,
            },
            limits,
        ))
    }
}

// Hook limits, as flags. Names mirror `wasmtime run` where they overlap. (Not a doc
// comment: see `super::Command`.)
#[derive(Args, Debug, Clone)]
pub struct LimitArgs {
    /// Wall-clock limit of a hook (`500ms`, `5s`, `2m`).
    #[arg(long, value_name = "DURATION", value_parser = parse_go_duration, default_value = "30s")]
    pub timeout: Duration,
    /// Instruction budget (enables fuel metering).
    #[arg(long, value_name = "N")]
    pub fuel: Option<u64>,
    /// Linear memory cap (`64Mi`, `1Gi`, bytes).
    #[arg(long, value_name = "QUANTITY", value_parser = parse_quantity_bytes, default_value = "64Mi")]
    pub max_memory: u64,
    /// Captured output kept per hook; the rest is dropped (`1Mi`).
    #[arg(long, value_name = "QUANTITY", value_parser = parse_quantity_bytes, default_value = "1Mi")]
    pub max_output: u64,
    /// What hooks may reach over the network (WASI sockets, name lookups, wasi:http;
    /// components only): `deny`, `pod` (the pod's own addresses), `allow`, or an allow-list
    /// such as `127.0.0.1:8080,[::1]:8080,localhost:9901`. Pods override it with the
    /// `wasmhook.dev/hook-network` annotation.
    #[arg(long, value_name = "POLICY", value_parser = parse_hook_network, default_value = "deny")]
    pub hook_network: HookNetwork,
}

impl LimitArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            timeout: self.timeout,
            fuel: self.fuel,
            max_memory: self.max_memory,
            max_output: usize::try_from(self.max_output).unwrap_or(usize::MAX),
            network: self.hook_network.clone(),
            ..Limits::default()
        }
    }
}

#[derive(Args, Debug)]
pub struct HookRunArgs {
    /// The hook: a `.wasm` module or component, `.wat` text, or (allowed) `.cwasm`.
    pub module: PathBuf,
    /// Arguments passed to the hook after argv[0] (the module's file name).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
    /// Preopen a host directory: `HOST[::GUEST]`, `:ro` at the end for read-only.
    #[arg(long = "dir", value_name = "HOST[::GUEST][:ro]", value_parser = parse_dir)]
    pub dirs: Vec<Preopen>,
    /// Set an environment variable for the hook (repeatable).
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Args, Debug)]
pub struct CompileArgs {
    pub module: PathBuf,
    /// Where to write the precompiled module [default: MODULE with extension .cwasm]
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
}

fn parse_hook_network(s: &str) -> Result<HookNetwork, String> {
    s.parse().map_err(|e| {
        format!("{e} (deny, pod, allow, or a comma-separated allow-list of HOST[:PORT] or CIDR[:PORT] entries)")
    })
}

fn parse_dir(s: &str) -> Result<Preopen, String> {
    let (spec, read_only) = match s.strip_suffix(":ro") {
        Some(rest) => (rest, true),
        None => (s, false),
    };
    let (host, guest) = match spec.split_once("::") {
        Some((h, g)) => (h, g.to_owned()),
        None => (spec, spec.to_owned()),
    };
    if host.is_empty() || guest.is_empty() {
        return Err("expected HOST[::GUEST][:ro]".into());
    }
    Ok(Preopen {
        host: host.into(),
        guest,
        read_only,
        volume: None,
    })
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err("expected NAME=VALUE".into()),
    }
}

/// Run the hook; its output goes to stdout (text: as it printed it; json: one object), and
/// its exit code becomes ours ([`exit_code`]).
pub fn hook_run(args: HookRunArgs, cache: &CacheArgs) -> CliResult {
    let rt = super::runtime(cache.runtime_config(Allocator::OnDemand, args.limits.limits()))?;
    let module = rt.load_file(&args.module).map_err(|e| match e {
        LoadError::NotFound(_) => CliError::ModuleNotFound(e.to_string()),
        _ => CliError::InvalidModule(e.to_string()),
    })?;
    let argv0 = args
        .module
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| args.module.display().to_string());
    let invocation = Invocation {
        args: std::iter::once(argv0).chain(args.args).collect(),
        env: args.env,
        preopens: args.dirs,
        limits: args.limits.limits(),
        identity: None,
        cancel: None,
        netns: None,
    };
    let outcome = super::block_on(false, rt.run(&module, invocation))?;
    let mut out = Stdout::lock();
    match args.output {
        OutputFormat::Text => {
            out.bytes(&outcome.output_with_marker())?;
            if !outcome.is_success() {
                message(format_args!("{}: {}", module.name(), outcome.status));
            }
        }
        OutputFormat::Json => out.line(outcome_json(&module, &outcome))?,
    }
    out.flush()?;
    Ok(ExitCode::from(exit_code(&outcome)))
}

/// The process exit code for a hook outcome (see [`exit`]): the hook's own code when it
/// has one (1 when it does not fit a byte), else the code of what stopped it. Exhaustive,
/// without a wildcard arm: a new [`ExecStatus`] must choose its code here.
pub fn exit_code(outcome: &ExecOutcome) -> u8 {
    match &outcome.status {
        ExecStatus::Success => 0,
        ExecStatus::Exited(n) => u8::try_from(*n).unwrap_or(1),
        ExecStatus::Failed(_) => 1,
        ExecStatus::TimedOut(_) => exit::TIMED_OUT,
        ExecStatus::Error(_) => exit::INVALID_MODULE,
        ExecStatus::FuelExhausted(_)
        | ExecStatus::MemoryLimit(_)
        | ExecStatus::MemoryTooSmall { .. }
        | ExecStatus::TableLimit(_)
        | ExecStatus::Trap(_)
        | ExecStatus::Cancelled => exit::LIMIT_OR_TRAP,
    }
}

/// The outcome as one JSON object (`hook run --output json`).
pub fn outcome_json(module: &crate::wasm::HookModule, o: &ExecOutcome) -> String {
    serde_json::json!({
        "module": module.name(),
        "kind": module.kind(),
        "status": o.status.name(),
        "reason": o.status.to_string(),
        "exitCode": o.exit_code(),
        "output": String::from_utf8_lossy(&o.output.combined),
        "truncated": o.truncated(),
        "droppedBytes": o.output.dropped,
        "durationMs": o.duration.as_secs_f64() * 1000.0,
        "fuelUsed": o.fuel_used,
        "networkRefused": o.network_refused,
    })
    .to_string()
}

/// Write the precompiled module; nothing goes to stdout, `wrote <file>` to stderr.
pub fn compile(args: CompileArgs, cache: &CacheArgs) -> CliResult {
    let bytes = std::fs::read(&args.module).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            CliError::ModuleNotFound(LoadError::NotFound(args.module.clone()).to_string())
        }
        _ => CliError::Failed(format!("{}: {e}", args.module.display())),
    })?;
    let rt = super::runtime(cache.runtime_config(Allocator::OnDemand, Limits::default()))?;
    let out = args
        .output
        .unwrap_or_else(|| args.module.with_extension("cwasm"));
    let cwasm = rt.precompile(&bytes).map_err(|e| {
        CliError::InvalidModule(format!(
            "{}: invalid hook module: {e}",
            args.module.display()
        ))
    })?;
    std::fs::write(&out, cwasm).map_err(|e| CliError::Failed(format!("{}: {e}", out.display())))?;
    message(format_args!("wrote {}", out.display()));
    Ok(ExitCode::SUCCESS)
}
