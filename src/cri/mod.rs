//! `wasmhook cri`: a CRI proxy in front of containerd that runs wasm `ExecSync` calls itself.
//!
//! The kubelet talks to the proxy's socket as it would to containerd. Every call is relayed
//! to the runtime byte for byte (HTTP/2 frames, headers, trailers), except `ExecSync` calls
//! whose command is a WebAssembly module inside the container: those run in wasmtime,
//! sandboxed and bounded, and the proxy answers them itself.
//!
//! ```text
//!  kubelet ──h2──► relay ──(route)──┬─ Forward ───────────────► runtime (containerd)
//!                                   ├─ Observe: forward, then forget/cancel a container
//!                                   └─ ExecSync ─► exec_sync ─► claims? ─ no ─► forward
//!                                                     │ yes
//!                                        context (cached ContainerStatus/PodSandboxStatus)
//!                                        handlers::exec::lookup: cmd[0] inside /proc/<pid>/root (openat2)
//!                                        wasm::HookRuntime::run ─► status::reply
//! ```
//!
//! Invariants:
//! - A forwarded call is never decoded or re-encoded: a CRI newer than ours works unchanged.
//! - The proxy claims an `ExecSync` only when `cmd[0]` opens, inside the container's root, as
//!   a wasm module or `.wat` text; everything else (not found, not wasm, container not
//!   running, unknown id) goes to the runtime, whose errors the kubelet then sees verbatim.
//! - A wasm call's outcome becomes a reply in one place ([`status`]): exit codes for what a
//!   process would have exited with, `DeadlineExceeded` only for a probe past its timeout,
//!   `Unknown` for wasmhook's own problems.
//! - No CRI message type appears in [`relay`]; [`proto`] is private to this module.

pub mod upstream;

mod context;
mod exec_sync;
pub mod metrics;
mod proto;
pub mod relay;
mod route;
pub mod status;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use prost::Message;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

use crate::grpc::{self, Body};
use crate::handlers::exec::ContainerModules;
use crate::hook::HookSettings;
use crate::wasm::HookRuntime;
use context::Contexts;
use metrics::Metrics;
use route::{Ending, Route};
use upstream::Upstream;

/// Where the proxy listens by default.
pub const DEFAULT_LISTEN: &str = "/run/wasmhook/cri.sock";
/// containerd's socket.
pub const DEFAULT_RUNTIME_ENDPOINT: &str = "/run/containerd/containerd.sock";

/// Configuration of a [`CriProxy`].
#[derive(Clone, Debug)]
pub struct CriProxyConfig {
    /// The socket the kubelet connects to. Default: [`DEFAULT_LISTEN`]. Created with mode
    /// 0660; a stale socket file is replaced.
    pub listen: PathBuf,
    /// The runtime's socket. Default: [`DEFAULT_RUNTIME_ENDPOINT`]. It need not exist yet.
    pub runtime_endpoint: PathBuf,
    /// Hook settings before the pod's `wasmhook.dev/*` annotations. Default:
    /// [`HookSettings::default`] (30 s, 64 MiB, no fuel, no network).
    pub defaults: HookSettings,
    /// The bound of compiling a module the node has not seen, apart from the call's own
    /// deadline. Default: 60 s.
    pub compile_timeout: Duration,
    /// The bound of each context lookup (`ContainerStatus`, `PodSandboxStatus`) the proxy
    /// makes. Default: 10 s.
    pub lookup_timeout: Duration,
    /// stdout and stderr kept per wasm call, each (the CRI's cap). Default: 16 MiB.
    pub max_output: usize,
    /// Serve Prometheus metrics here at `/metrics`. Default: none.
    pub metrics_addr: Option<SocketAddr>,
    /// How long open calls may take to finish after shutdown begins. Default: 10 s.
    pub drain_timeout: Duration,
}

impl Default for CriProxyConfig {
    fn default() -> Self {
        CriProxyConfig {
            listen: DEFAULT_LISTEN.into(),
            runtime_endpoint: DEFAULT_RUNTIME_ENDPOINT.into(),
            defaults: HookSettings::default(),
            compile_timeout: crate::handlers::exec::DEFAULT_COMPILE_TIMEOUT,
            lookup_timeout: Duration::from_secs(10),
            max_output: grpc::MAX_MESSAGE,
            metrics_addr: None,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// Strip the `unix://` scheme the kubelet's endpoint flags use.
pub fn socket_path(endpoint: &str) -> PathBuf {
    PathBuf::from(endpoint.strip_prefix("unix://").unwrap_or(endpoint))
}

/// Everything a call needs, shared by all calls.
pub(crate) struct Shared {
    config: CriProxyConfig,
    upstream: Arc<Upstream>,
    runtime: HookRuntime,
    contexts: Contexts,
    modules: ContainerModules,
    metrics: Arc<Metrics>,
}

impl relay::Hooks for Shared {
    fn wants_body(&self, path: &str) -> bool {
        route::route(path) != Route::Forward
    }

    async fn answer(&self, path: &str, body: Bytes) -> Option<Response<Body>> {
        match route::route(path) {
            Route::ExecSync => exec_sync::answer(self, body).await,
            Route::Ends(_) | Route::Forward => None,
        }
    }

    fn forwarded(&self, path: &str, body: &Bytes) {
        let Route::Ends(ending) = route::route(path) else {
            return;
        };
        let Some(msg) = grpc::unframe(body.clone()) else {
            return;
        };
        match ending {
            Ending::Container => {
                if let Ok(r) = proto::ContainerIdRequest::decode(msg) {
                    self.contexts.forget_container(&r.container_id);
                }
            }
            Ending::Sandbox => {
                if let Ok(r) = proto::PodSandboxIdRequest::decode(msg) {
                    self.contexts.forget_sandbox(&r.pod_sandbox_id);
                }
            }
        }
        self.metrics.set_cached_containers(self.contexts.cached());
    }
}

/// A bound CRI proxy, ready to [`serve`](CriProxy::serve).
pub struct CriProxy {
    shared: Arc<Shared>,
    listener: UnixListener,
    /// Whether the socket file is ours to remove at shutdown (not when systemd made it).
    owns_socket: bool,
    metrics_listener: Option<tokio::net::TcpListener>,
}

impl CriProxy {
    /// Bind the listening socket (and the metrics address). The runtime is not contacted:
    /// the proxy starts before it and connects on the first call.
    pub async fn bind(config: CriProxyConfig, runtime: HookRuntime) -> std::io::Result<CriProxy> {
        let listener = bind_socket(&config.listen)?;
        Self::build(config, runtime, listener, true).await
    }

    /// Serve on a socket made by someone else: systemd's socket activation, whose socket
    /// outlives the proxy (calls made while it restarts wait in the socket's backlog instead
    /// of failing). `config.listen` only names it in messages; it is not removed at shutdown.
    pub async fn from_listener(
        config: CriProxyConfig,
        runtime: HookRuntime,
        listener: std::os::unix::net::UnixListener,
    ) -> std::io::Result<CriProxy> {
        listener.set_nonblocking(true)?;
        let listener = UnixListener::from_std(listener)?;
        Self::build(config, runtime, listener, false).await
    }

    async fn build(
        config: CriProxyConfig,
        runtime: HookRuntime,
        listener: UnixListener,
        owns_socket: bool,
    ) -> std::io::Result<CriProxy> {
        let metrics_listener = match config.metrics_addr {
            Some(addr) => Some(metrics::bind(addr).await.map_err(|e| {
                std::io::Error::new(e.kind(), format!("metrics address {addr}: {e}"))
            })?),
            None => None,
        };
        let shared = Arc::new(Shared {
            upstream: Arc::new(Upstream::new(config.runtime_endpoint.clone())),
            contexts: Contexts::new(config.lookup_timeout),
            modules: ContainerModules::new(config.compile_timeout),
            metrics: Arc::new(Metrics::new()),
            runtime,
            config,
        });
        Ok(CriProxy {
            shared,
            listener,
            owns_socket,
            metrics_listener,
        })
    }

    /// The metrics address actually bound (with port 0, the port chosen).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// The proxy's metrics.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.shared.metrics.clone()
    }

    /// Serve until `shutdown` resolves: then stop accepting, let open calls finish (at
    /// most [`CriProxyConfig::drain_timeout`]), cancel the wasm calls still running, and
    /// remove the socket file (when the proxy made it).
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()>) {
        let stop = CancellationToken::new();
        let metrics_task = self
            .metrics_listener
            .map(|l| tokio::spawn(metrics::serve(l, self.shared.metrics.clone(), stop.clone())));
        let relay = Arc::new(relay::Relay {
            upstream: self.shared.upstream.clone(),
            hooks: self.shared.clone(),
            metrics: self.shared.metrics.clone(),
        });
        let listen = self.owns_socket.then(|| self.shared.config.listen.clone());
        let drain = self.shared.config.drain_timeout;
        let server = relay::serve(relay, self.listener, stop.clone(), drain);
        tokio::pin!(server);
        tokio::pin!(shutdown);
        tokio::select! {
            _ = &mut server => {}
            _ = &mut shutdown => {
                tracing::info!(
                    "shutting down: no new calls; open calls get {}",
                    humantime::format_duration(drain)
                );
                stop.cancel();
                server.await;
            }
        }
        // Wasm calls still running after the drain end now (their replies say so);
        // forwarded calls end with their connections.
        self.shared.contexts.cancel_all();
        stop.cancel();
        if let Some(t) = metrics_task {
            let _ = t.await;
        }
        if let Some(listen) = listen {
            let _ = std::fs::remove_file(listen);
        }
    }
}

/// Create the listening socket: parent directory created, a stale socket (nobody
/// listening) replaced, mode 0660. A live socket is not taken over: another proxy is
/// running there.
///
/// The socket never exists at `path` with any other mode: it is bound inside a private
/// (0700) directory beside `path`, given its mode there, and renamed into place. Binding
/// at `path` and then changing the mode would leave a window in which anyone the umask
/// lets in could connect (and a kubelet could see the wrong mode); the umask itself is
/// process-wide, so narrowing it around `bind` is not safe with other threads running.
fn bind_socket(path: &Path) -> std::io::Result<UnixListener> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{}: another process is listening there", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let private = tempfile::Builder::new()
        .prefix(".wasmhook-bind-")
        .tempdir_in(dir)?;
    let staged = private.path().join("sock");
    let listener = UnixListener::bind(&staged)?;
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o660))?;
    std::fs::rename(&staged, path)?;
    Ok(listener)
}
