//! `wasmhook run FILE...`: run Pod manifests on a backend and print Kubernetes-style events.
//!
//! Output (`--output text`): a live event stream like `kubectl get events`, hook results
//! (with the full failure message and the hook's output), container log lines with
//! `--logs`, and a status summary per pod at the end. `--output json`: one JSON object per
//! line (events, `HookResult`s, `Log` lines), and last, one `PodStatus` per pod.
//!
//! Stopping: SIGINT/SIGTERM or `--stop-after` stop every pod gracefully (with
//! `--grace-period` overriding the manifests'); a second SIGINT/SIGTERM kills at once.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use tokio::sync::mpsc;

use super::error::{message, warn, CliError, CliResult};
use super::hook::{CacheArgs, LimitArgs, OutputFormat, PoolArgs};
use super::validate::{check, ManifestArgs};
use crate::backend::process::ProcessBackendConfig;
use crate::backend::runc::{RuncBackend, RuncBackendConfig};
use crate::backend::{Backend, LogLine, LogStream, ProcessBackend};
use crate::engine::{BackoffConfig, Engine, EngineConfig, PodPhase, PodStatus};
use crate::events::{
    render_hook_json, render_hook_text, render_json, render_readiness_json, render_readiness_text,
    render_text, Record, Recorder,
};
use crate::handlers::Handlers;
use crate::hook::HookSettings;
use crate::manifest::parse_go_duration;
use crate::wasm::HookRuntime;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// Containers as host process groups (no root, nothing to install).
    #[default]
    Process,
    /// Containers run by the runc OCI runtime (root; images from `--images` or registries).
    Runc,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Pod manifests (YAML or JSON; several pods per file run side by side).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t)]
    pub backend: BackendKind,
    /// Local image store of `--backend runc`: OCI image layouts or rootfs directories. An
    /// image found here is used as it is (whatever imagePullPolicy says); other images are
    /// pulled from their registries (anonymously), as imagePullPolicy says.
    #[arg(long, value_name = "DIR")]
    pub images: Option<PathBuf>,
    /// A registry (`HOST[:PORT]`, as image references name it) that `--backend runc` pulls
    /// from over plain HTTP instead of HTTPS. Repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,
    /// State of `--backend runc`: bundles, sandboxes, the image cache (pulled images stay
    /// there for later runs) and runc's root.
    #[arg(long, value_name = "DIR", default_value = crate::backend::runc::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
    /// Print the containers' stdout and stderr, prefixed with pod/container.
    #[arg(long)]
    pub logs: bool,
    /// Stop the pods gracefully after this long (`30s`, `2m`).
    #[arg(long, value_name = "DURATION", value_parser = parse_go_duration)]
    pub stop_after: Option<Duration>,
    /// Override terminationGracePeriodSeconds when stopping (`kubectl delete --grace-period`).
    #[arg(long, value_name = "SECONDS")]
    pub grace_period: Option<i64>,
    /// Multiply the crash-loop and image pull back-offs (kubelet: 10 s doubling to 300 s)
    /// by this factor.
    #[arg(long, value_name = "FACTOR", default_value_t = 1.0)]
    pub backoff_scale: f64,
    #[command(flatten)]
    pub pool: PoolArgs,
    #[command(flatten)]
    pub manifest: ManifestArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Messages (warnings, invalid manifests, stop notices) go to stderr; the event stream and
/// the final statuses to stdout, where write errors are ignored: the pods run to their end
/// whether or not anyone still reads.
pub fn run(args: RunArgs, cache: &CacheArgs) -> CliResult {
    let backoff = BackoffConfig::try_scaled(args.backoff_scale)
        .map_err(|e| CliError::Usage(format!("--backoff-scale {e}")))?;
    let limits = args.limits.limits();
    let rt = args.pool.runtime(cache, limits.clone())?;
    let opts = args
        .manifest
        .load_options(args.backend == BackendKind::Runc);
    let report = check(&args.files, &opts, &rt);
    report.warnings.iter().for_each(warn);
    if !report.is_valid() {
        return Err(CliError::InvalidManifest(report.errors));
    }
    if args.backend == BackendKind::Runc {
        crate::backend::runc::available(None)
            .map_err(|e| CliError::Failed(format!("--backend runc: {e}")))?;
    }
    let config = EngineConfig {
        hook_defaults: HookSettings {
            exec_policy: args.manifest.exec_policy,
            ..limits.hook_settings()
        },
        hooks_dir: args.manifest.hooks_dir.clone(),
        backoff,
    };
    let statuses = super::block_on(true, run_pods(&args, rt, config, report.pods))?;
    let code = statuses
        .iter()
        .map(|s| u8::from(!(s.phase == PodPhase::Succeeded || s.stopped_cleanly())))
        .max()
        .unwrap_or(0);
    Ok(ExitCode::from(code))
}

async fn run_pods(
    args: &RunArgs,
    rt: HookRuntime,
    config: EngineConfig,
    pods: Vec<crate::manifest::ManifestPod>,
) -> Vec<PodStatus> {
    let (log_tx, log_rx) = mpsc::unbounded_channel();
    let backend: Arc<dyn Backend> = match args.backend {
        BackendKind::Process => Arc::new(ProcessBackend::new(ProcessBackendConfig {
            state_dir: None,
            logs: args.logs.then_some(log_tx),
        })),
        BackendKind::Runc => Arc::new(RuncBackend::new(RuncBackendConfig {
            images_dir: args.images.clone(),
            state_dir: Some(args.state_dir.clone()),
            logs: args.logs.then_some(log_tx),
            insecure_registries: args.insecure_registries.clone(),
            // On a terminal only: never mixed into JSON or into output read by programs.
            pull_progress: (args.output == OutputFormat::Text && std::io::stderr().is_terminal())
                .then(super::progress::terminal),
            ..RuncBackendConfig::default()
        })),
    };
    let engine = Engine::new(backend, Handlers::new(rt), config);
    let (recorder, records) = Recorder::channel();
    let printer = tokio::spawn(print_records(records, log_rx, args.output));
    // Before any pod starts: see `StopSignals`.
    let signals = super::StopSignals::install();
    let handles: Vec<_> = pods
        .iter()
        .map(|p| engine.start_pod(p, recorder.clone()))
        .collect();
    drop(recorder);

    let grace = args.grace_period;
    let stop_after = args.stop_after;
    let controller = {
        let stops: Vec<_> = handles.iter().map(|h| h.stop_handle()).collect();
        tokio::spawn(async move {
            let Some(mut signals) = signals else {
                return;
            };
            let timer = async {
                match stop_after {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = signals.recv() => {}
                _ = timer => {}
            }
            for s in &stops {
                s.stop(grace);
            }
            signals.recv().await;
            message("second interrupt, killing now");
            for s in &stops {
                s.kill();
            }
        })
    };
    let mut statuses = Vec::new();
    for h in handles {
        statuses.push(h.wait().await);
    }
    controller.abort();
    drop(engine);
    let _ = printer.await;
    let mut out = std::io::stdout().lock();
    for s in &statuses {
        let _ = match args.output {
            OutputFormat::Json => writeln!(out, "{}", s.to_json()),
            OutputFormat::Text => write!(out, "\n{}", s.to_text()),
        };
    }
    statuses
}

/// Print events, hook reports and log lines as they come, until every sender is gone.
async fn print_records(
    mut records: mpsc::UnboundedReceiver<Record>,
    mut logs: mpsc::UnboundedReceiver<LogLine>,
    format: OutputFormat,
) {
    let color = std::io::stdout().is_terminal();
    let (mut records_open, mut logs_open) = (true, true);
    while records_open || logs_open {
        let line = tokio::select! {
            r = records.recv(), if records_open => match r {
                None => { records_open = false; continue }
                Some(Record::Event(e)) => match format {
                    OutputFormat::Json => render_json(&e),
                    OutputFormat::Text => render_text(&e, color),
                },
                Some(Record::Hook(h)) => match format {
                    OutputFormat::Json => render_hook_json(&h),
                    OutputFormat::Text => render_hook_text(&h),
                },
                Some(Record::Readiness(r)) => match format {
                    OutputFormat::Json => render_readiness_json(&r),
                    OutputFormat::Text => render_readiness_text(&r),
                },
            },
            l = logs.recv(), if logs_open => match l {
                None => { logs_open = false; continue }
                Some(l) => render_log(&l, format),
            },
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
    }
}

fn render_log(l: &LogLine, format: OutputFormat) -> String {
    let stream = match l.stream {
        LogStream::Stdout => "stdout",
        LogStream::Stderr => "stderr",
    };
    match format {
        OutputFormat::Json => serde_json::json!({
            "kind": "Log", "pod": l.pod, "container": l.container, "stream": stream, "line": l.line,
        })
        .to_string(),
        OutputFormat::Text => format!("[{}/{}] {}", l.pod, l.container, l.line),
    }
}
