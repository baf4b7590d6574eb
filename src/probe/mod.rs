//! Probes (`startupProbe`, `livenessProbe`, `readinessProbe`): one probe run with the
//! kubelet's prober semantics (`pkg/probe/*`, `pkg/kubelet/prober/prober.go`).
//!
//! This module runs *one* probe and says what it found ([`ProbeOutcome`]); when to probe,
//! the thresholds and what a result does to the container (kill, readiness) are the
//! engine's (`engine::pod::probe`).
//!
//! Handlers, dispatched like the kubelet's `runProbe` (exec, httpGet, tcpSocket, grpc):
//! - [`exec`]: `command[0]` is a WebAssembly module, run by [`crate::wasm`] with the container's
//!   env and mounts, bounded by `timeoutSeconds` (the kubelet's exec probe timeout).
//! - [`http`]: the httpGet request of hooks with the prober's rules: 200–399 succeeds (a
//!   3xx not followed is a warning), body read capped at 10 KiB, `User-Agent:
//!   kube-probe/<major>.<minor>`, no compression, bounded by `timeoutSeconds`.
//! - [`tcp`]: a TCP connect within `timeoutSeconds`.
//! - [`grpc`]: `grpc.health.v1.Health/Check` over plaintext HTTP/2, `SERVING` succeeds.
//!
//! Invariants: a probe never outlives `timeout` nor `cancel`, and never panics on bad input;
//! every way it can go wrong is a [`ProbeOutcome`] whose `output` says why.

pub mod exec;
pub mod grpc;
pub mod http;
pub mod tcp;

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{GRPCAction, HTTPGetAction, Probe, TCPSocketAction};
use tokio_util::sync::CancellationToken;

use crate::handlers::{Handlers, HookTarget};
use crate::hook::HookSettings;

/// Which probe of a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    Startup,
    Liveness,
    Readiness,
}

impl ProbeKind {
    /// The kubelet's `probeType` as events print it: `Startup`, `Liveness`, `Readiness`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
        }
    }

    /// The container field: `startupProbe`, `livenessProbe`, `readinessProbe`.
    pub fn field(self) -> &'static str {
        match self {
            ProbeKind::Startup => "startupProbe",
            ProbeKind::Liveness => "livenessProbe",
            ProbeKind::Readiness => "readinessProbe",
        }
    }
}

/// A probe's handler, as the kubelet dispatches it.
#[derive(Clone, Debug)]
pub enum ProbeHandler {
    /// `exec`: `argv` is `command` as written; `module` is `command[0]` resolved on the
    /// host to a module file, if it names one there (the lookup order is
    /// [`crate::handlers::exec`]'s).
    Exec {
        module: Option<PathBuf>,
        argv: Vec<String>,
    },
    HttpGet(HTTPGetAction),
    TcpSocket(TCPSocketAction),
    Grpc(GRPCAction),
}

impl ProbeHandler {
    /// The handler of `probe` (exec, httpGet, tcpSocket, grpc: the first set);
    /// `resolve` maps `exec.command[0]` to a module file on the host, if it names one.
    /// `None` when no handler is set (validation rejects that).
    pub fn from_k8s(probe: &Probe, resolve: impl FnOnce(&str) -> Option<PathBuf>) -> Option<Self> {
        if let Some(exec) = &probe.exec {
            let argv = exec.command.clone().unwrap_or_default();
            let first = argv.first()?;
            return Some(ProbeHandler::Exec {
                module: resolve(first),
                argv,
            });
        }
        if let Some(h) = &probe.http_get {
            return Some(ProbeHandler::HttpGet(h.clone()));
        }
        if let Some(t) = &probe.tcp_socket {
            return Some(ProbeHandler::TcpSocket(t.clone()));
        }
        probe.grpc.clone().map(ProbeHandler::Grpc)
    }

    /// `exec`, `httpGet`, `tcpSocket` or `grpc`.
    pub fn name(&self) -> &'static str {
        match self {
            ProbeHandler::Exec { .. } => "exec",
            ProbeHandler::HttpGet(_) => "httpGet",
            ProbeHandler::TcpSocket(_) => "tcpSocket",
            ProbeHandler::Grpc(_) => "grpc",
        }
    }
}

/// The kubelet's `probe.Result`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeResult {
    Success,
    /// Success, with something worth an event (`ProbeWarning`), e.g. a redirect not followed.
    Warning,
    Failure,
    /// The probe could not be run (the kubelet's `probe.Unknown` with an error).
    Unknown,
}

/// What one probe run found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeOutcome {
    pub result: ProbeResult,
    /// The probe's output as the kubelet puts it into events: the failure text, the exec
    /// module's output, the warning.
    pub output: String,
}

impl ProbeOutcome {
    pub fn new(result: ProbeResult, output: impl Into<String>) -> Self {
        ProbeOutcome {
            result,
            output: output.into(),
        }
    }
}

/// Everything one probe run needs besides the handler.
#[derive(Clone, Debug)]
pub struct ProbeContext {
    /// The pod and container probed (its `kind` is not used: a probe is no hook).
    pub target: HookTarget,
    /// `timeoutSeconds`.
    pub timeout: Duration,
    /// The wasm limits of an exec probe (fuel, memory, network); its `timeout` is not used.
    pub settings: HookSettings,
    /// Cancelled when the probe became moot (its container stopped).
    pub cancel: CancellationToken,
}

/// Run `handler` once, bounded by `ctx.timeout` and `ctx.cancel`.
pub async fn run(handlers: &Handlers, handler: &ProbeHandler, ctx: &ProbeContext) -> ProbeOutcome {
    match handler {
        ProbeHandler::Exec { module, argv } => {
            exec::run(handlers, module.as_deref(), argv, ctx).await
        }
        ProbeHandler::HttpGet(action) => http::run(handlers.http(), action, ctx).await,
        ProbeHandler::TcpSocket(action) => tcp::run(action, ctx).await,
        ProbeHandler::Grpc(action) => grpc::run(action, ctx).await,
    }
}
