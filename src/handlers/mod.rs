//! Running one lifecycle handler: `exec` (a WebAssembly module, see [`crate::wasm`]; a
//! command that is not one runs natively in the container, see [`exec`]), `httpGet`,
//! `tcpSocket` and `sleep` (in the host, async).
//!
//! The engine calls [`Handlers::run`] and does not care which kind of handler it is. Every
//! handler returns a [`HookOutcome`]: `Ok` or the full failure message in the kubelet's format
//! (`lifecycle-semantics.md` §3), plus any extra events the handler wants recorded.
//!
//! Invariants:
//! - A handler never outlives `HookContext::settings.timeout` nor the cancellation of
//!   `HookContext::cancel` (a wasmhook extension: the kubelet lets some hooks hang).
//! - A handler never panics on bad input; everything becomes a failure message.

pub mod exec;
pub mod http;
pub mod sleep;
pub mod tcp;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{HTTPGetAction, SleepAction, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio_util::sync::CancellationToken;

use crate::backend::{Backend, ContainerId};
use crate::events::{Event, PodRef};
use crate::wasm::HookRuntime;

/// The shared hook types live in [`crate::hook`] (so `wasm` and `manifest` need not import
/// `handlers`); re-exported here for the public paths `handlers::HookKind` etc.
pub use crate::hook::{HookKind, HookSettings, HttpStatusMode};

/// A volume mount as a hook sees it: the host directory preopened at the container path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookMount {
    /// The volume's name in `spec.volumes`.
    pub volume: String,
    pub host_path: PathBuf,
    pub guest_path: String,
    pub read_only: bool,
}

/// The pod and container a hook belongs to. Plain data, built by the engine.
#[derive(Clone, Debug)]
pub struct HookTarget {
    pub pod: PodRef,
    pub container: String,
    pub kind: HookKind,
    /// The pod's address as the backend reports it: the default host of httpGet/tcpSocket.
    pub pod_ip: IpAddr,
    /// `containerPort` by port name, for named ports (`spec.containers[].ports[]`).
    pub ports: Vec<(String, u16)>,
    /// The container's environment (after `$(VAR)` expansion), for exec hooks.
    pub env: Vec<(String, String)>,
    /// The container's volume mounts, preopened for exec hooks.
    pub mounts: Vec<HookMount>,
    /// The pod's network namespace, when the backend gives it one: httpGet and tcpSocket
    /// connect from inside it (see [`tcp::dial`]).
    pub netns: Option<PathBuf>,
    /// The running container, where an exec handler's `command[0]` is looked up first and
    /// where a command that is not wasm runs. `None` outside a pod (`wasmhook hook run`):
    /// then only modules run.
    pub instance: Option<ContainerHandle>,
}

/// A running container as its backend knows it.
#[derive(Clone)]
pub struct ContainerHandle {
    pub backend: Arc<dyn Backend>,
    pub id: ContainerId,
}

impl std::fmt::Debug for ContainerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerHandle")
            .field("backend", &self.backend.name())
            .field("id", &self.id)
            .finish()
    }
}

/// Everything one handler run needs besides the handler itself.
#[derive(Clone, Debug)]
pub struct HookContext {
    pub target: HookTarget,
    pub settings: HookSettings,
    /// Cancelled when the hook became moot (pod killed at once, engine shutting down).
    pub cancel: CancellationToken,
}

/// A lifecycle handler ready to run. Built from a `LifecycleHandler` by [`Hook::from_k8s`].
#[derive(Clone, Debug)]
pub enum Hook {
    /// `exec`: `argv` is `command` as written; `module` is `command[0]` resolved on the
    /// host to a module file, if it names one there (see [`exec`] for the lookup order).
    Exec {
        module: Option<PathBuf>,
        argv: Vec<String>,
    },
    HttpGet(HTTPGetAction),
    TcpSocket(TCPSocketAction),
    Sleep(SleepAction),
}

impl Hook {
    /// Pick the handler the kubelet would dispatch to (exec, httpGet, sleep; then our
    /// tcpSocket). `resolve` maps `exec.command[0]` to a module file on the host, if it
    /// names one. `Err` carries the kubelet's `Cannot run handler: invalid handler: ...`
    /// message.
    pub fn from_k8s(
        handler: &k8s_openapi::api::core::v1::LifecycleHandler,
        resolve: impl FnOnce(&str) -> Option<PathBuf>,
    ) -> Result<Hook, String> {
        if let Some(exec) = &handler.exec {
            let argv = exec.command.clone().unwrap_or_default();
            if let Some(first) = argv.first() {
                return Ok(Hook::Exec {
                    module: resolve(first),
                    argv,
                });
            }
        } else if let Some(http) = &handler.http_get {
            return Ok(Hook::HttpGet(http.clone()));
        } else if let Some(sleep) = &handler.sleep {
            return Ok(Hook::Sleep(sleep.clone()));
        } else if let Some(tcp) = &handler.tcp_socket {
            return Ok(Hook::TcpSocket(tcp.clone()));
        }
        Err(format!("Cannot run handler: invalid handler: {handler:?}"))
    }
}

/// The result of one handler run.
#[derive(Clone, Debug)]
pub struct HookOutcome {
    /// `Ok`, or the full failure message in the kubelet's format, e.g.
    /// `HTTP lifecycle hook (/ready) for Container "app" in Pod "web_default(uid)" failed - error: ...`.
    pub result: Result<(), String>,
    /// Events the handler asks the engine to record (e.g. `LifecycleHTTPFallback` on the pod).
    pub events: Vec<Event>,
    /// What the hook printed (exec hooks), bounded; empty for host handlers.
    pub output: Vec<u8>,
    pub duration: Duration,
    /// An exec hook that ran as a native command in the container, not as wasm.
    pub native: bool,
}

impl HookOutcome {
    pub fn ok(started: Instant) -> Self {
        HookOutcome {
            result: Ok(()),
            events: Vec::new(),
            output: Vec::new(),
            duration: started.elapsed(),
            native: false,
        }
    }

    pub fn failed(started: Instant, message: String) -> Self {
        HookOutcome {
            result: Err(message),
            events: Vec::new(),
            output: Vec::new(),
            duration: started.elapsed(),
            native: false,
        }
    }
}

/// Runs handlers. Cheap to clone, `Send + Sync`; one per engine.
#[derive(Clone)]
pub struct Handlers {
    wasm: HookRuntime,
    http: http::HttpClient,
    modules: Arc<exec::ContainerModules>,
}

impl Handlers {
    pub fn new(wasm: HookRuntime) -> Self {
        Handlers {
            wasm,
            http: http::HttpClient::new(),
            modules: Arc::new(exec::ContainerModules::new(exec::DEFAULT_COMPILE_TIMEOUT)),
        }
    }

    pub fn wasm(&self) -> &HookRuntime {
        &self.wasm
    }

    /// Modules found in containers, compiled once per file (exec hooks and probes).
    pub fn container_modules(&self) -> &exec::ContainerModules {
        &self.modules
    }

    /// The HTTP client of httpGet hooks, shared with httpGet probes.
    pub fn http(&self) -> &http::HttpClient {
        &self.http
    }

    /// Run `hook` to completion, its deadline, or cancellation, whichever comes first.
    pub async fn run(&self, hook: &Hook, ctx: &HookContext) -> HookOutcome {
        match hook {
            Hook::Exec { module, argv } => exec::run(self, module.as_deref(), argv, ctx).await,
            Hook::HttpGet(action) => http::run(&self.http, action, ctx).await,
            Hook::TcpSocket(action) => tcp::run(action, ctx).await,
            Hook::Sleep(action) => sleep::run(action, ctx).await,
        }
    }
}

/// Resolve a probe/hook port the kubelet's way: an int is taken as is; a string is matched
/// against the container's port names first, then parsed as an integer. The result must be
/// in 1..=65535, else `invalid port number: <n>`.
pub fn resolve_port(port: &IntOrString, target: &HookTarget) -> Result<u16, String> {
    let n: i64 = match port {
        IntOrString::Int(n) => i64::from(*n),
        IntOrString::String(name) => match target.ports.iter().find(|(n, _)| n == name) {
            Some((_, p)) => i64::from(*p),
            // The kubelet's "last ditch effort" (`probe.ResolveContainerPort`) and its error.
            None => name.parse::<i64>().map_err(|e| {
                let why = match e.kind() {
                    std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                        "value out of range"
                    }
                    _ => "invalid syntax",
                };
                format!(
                    "strconv.Atoi: parsing {}: {why}",
                    crate::events::go_quote(name.as_bytes())
                )
            })?,
        },
    };
    u16::try_from(n)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("invalid port number: {n}"))
}
