//! Running one hook call: a fresh store and instance, WASI context, limits, and the outcome.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use wasmtime::component::ResourceTable;
use wasmtime::{Store, Trap, UpdateDeadline, WasmBacktrace};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::sockets::WasiSocketsCtxView;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::cache::{HookModule, Prepared};
use super::limits::{LimitHit, Limits, StoreLimiter};
use super::network::{GuardedSockets, HttpPolicy, NetworkGuard};
use super::output::{CapturedOutput, OutputBuffer};
use super::typed;
use super::HookRuntime;
use crate::events::PodRef;
use crate::hook::{HookKind, PodScope};

/// A host directory the hook sees at `guest` (a container's volume mount).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preopen {
    pub host: PathBuf,
    pub guest: String,
    pub read_only: bool,
    /// The volume's name, when it is one (shown to typed hooks).
    pub volume: Option<String>,
}

/// Which pod, container and hook a call is for. Sets `WASMHOOK_POD`, `WASMHOOK_NAMESPACE`,
/// `WASMHOOK_CONTAINER` and `WASMHOOK_HOOK`, and fills the typed hook context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookIdentity {
    pub pod: PodRef,
    pub container: String,
    pub kind: HookKind,
}

/// One hook call.
#[derive(Clone, Debug, Default)]
pub struct Invocation {
    /// `argv`, including `argv[0]` (the module name).
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub preopens: Vec<Preopen>,
    pub limits: Limits,
    pub identity: Option<HookIdentity>,
    /// Cancelling it stops the hook (as dropping the `run` future does).
    pub cancel: Option<CancellationToken>,
    /// The network namespace (a path such as `/proc/<pid>/ns/net`) the hook's sockets live
    /// in, when it may use the network (`limits.network` is not `deny`): the call then runs
    /// on a thread of its own that has entered the namespace, so `127.0.0.1` is the pod's
    /// loopback, not the node's, and the `pod` policy means the namespace's own addresses
    /// ([`PodScope::Namespace`]). `None`: the caller's namespace, where `pod` means exactly
    /// `127.0.0.1` and `::1` ([`PodScope::HostLoopback`]).
    pub netns: Option<PathBuf>,
}

/// How a hook call ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecStatus {
    Success,
    /// `proc_exit(n)` with `n != 0` (a preview 2 command returning `err` counts as 1).
    Exited(i32),
    /// A typed hook returned `err(message)`.
    Failed(String),
    TimedOut(Duration),
    FuelExhausted(u64),
    MemoryLimit(u64),
    /// The module needs more memory to start (its memories' initial size) than the limit:
    /// the limit is too low for this module, whatever it does.
    MemoryTooSmall {
        limit: u64,
        needed: u64,
    },
    TableLimit(u64),
    /// A wasm trap, with the wasm backtrace when there is one.
    Trap(String),
    Cancelled,
    /// The call could not start (instantiation or WASI set-up failed).
    Error(String),
}

impl ExecStatus {
    /// Short machine-readable name, used in JSON output.
    pub fn name(&self) -> &'static str {
        match self {
            ExecStatus::Success => "success",
            ExecStatus::Exited(_) => "exited",
            ExecStatus::Failed(_) => "failed",
            ExecStatus::TimedOut(_) => "timeout",
            ExecStatus::FuelExhausted(_) => "fuel-exhausted",
            ExecStatus::MemoryLimit(_) | ExecStatus::MemoryTooSmall { .. } => "memory-limit",
            ExecStatus::TableLimit(_) => "table-limit",
            ExecStatus::Trap(_) => "trap",
            ExecStatus::Cancelled => "cancelled",
            ExecStatus::Error(_) => "error",
        }
    }
}

impl fmt::Display for ExecStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExecStatus::Success => f.write_str("succeeded"),
            ExecStatus::Exited(n) => write!(f, "exited with code {n}"),
            ExecStatus::Failed(msg) => f.write_str(msg),
            ExecStatus::TimedOut(d) => {
                write!(f, "timed out after {}", humantime::format_duration(*d))
            }
            ExecStatus::FuelExhausted(budget) => write!(f, "fuel exhausted (budget {budget})"),
            ExecStatus::MemoryLimit(bytes) => {
                write!(f, "memory limit of {} exceeded", format_bytes(*bytes))
            }
            ExecStatus::MemoryTooSmall { limit, needed } => write!(
                f,
                "memory limit of {} is below the {} this module needs to start: raise \
                 wasmhook.dev/hook-max-memory (or --max-memory)",
                format_bytes(*limit),
                format_size(*needed)
            ),
            ExecStatus::TableLimit(n) => write!(f, "table limit of {n} elements exceeded"),
            ExecStatus::Trap(msg) => write!(f, "trap: {msg}"),
            ExecStatus::Cancelled => f.write_str("cancelled"),
            ExecStatus::Error(msg) => write!(f, "cannot run: {msg}"),
        }
    }
}

/// A size for people: exact units when they divide, else MiB with one decimal.
fn format_size(n: u64) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) != 0 => {
            format!("{:.1} MiB", n as f64 / f64::from(1 << 20))
        }
        n => format_bytes(n),
    }
}

fn format_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 && n % (1 << 30) == 0 => format!("{} GiB", n >> 30),
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

/// Everything about a finished call.
#[derive(Clone, Debug)]
pub struct ExecOutcome {
    pub status: ExecStatus,
    pub output: CapturedOutput,
    pub duration: Duration,
    /// Fuel consumed, when the call was metered.
    pub fuel_used: Option<u64>,
    /// What the network policy refused the hook, one line each (`tcp connect to
    /// 10.0.0.1:80`, `name lookup of example.com`), in order, at most 16.
    pub network_refused: Vec<String>,
}

impl ExecOutcome {
    pub fn is_success(&self) -> bool {
        self.status == ExecStatus::Success
    }

    /// The exit code a process would have had: 0, `n` for `proc_exit(n)`, 1 for a failed
    /// typed hook, `None` when the hook was stopped, trapped or could not start.
    /// Exhaustive, without a wildcard arm: a new [`ExecStatus`] must choose here.
    pub fn exit_code(&self) -> Option<i32> {
        match self.status {
            ExecStatus::Success => Some(0),
            ExecStatus::Exited(n) => Some(n),
            ExecStatus::Failed(_) => Some(1),
            ExecStatus::TimedOut(_)
            | ExecStatus::FuelExhausted(_)
            | ExecStatus::MemoryLimit(_)
            | ExecStatus::MemoryTooSmall { .. }
            | ExecStatus::TableLimit(_)
            | ExecStatus::Trap(_)
            | ExecStatus::Cancelled
            | ExecStatus::Error(_) => None,
        }
    }

    /// stderr as a process's would read, then wasmhook's notes, one `wasmhook: <note>` line
    /// each: every network refusal (`network policy refused <what>`), then `note` (why the
    /// call ended, when a process could not have said so itself).
    pub fn stderr_with_notes(&self, note: Option<String>) -> Vec<u8> {
        let mut stderr = self.output.stderr.clone();
        let refusals = self
            .network_refused
            .iter()
            .map(|r| format!("network policy refused {r}"));
        for note in refusals.chain(note) {
            if !stderr.is_empty() && !stderr.ends_with(b"\n") {
                stderr.push(b'\n');
            }
            stderr.extend_from_slice(format!("wasmhook: {note}\n").as_bytes());
        }
        stderr
    }

    /// Whether output was dropped at the cap.
    pub fn truncated(&self) -> bool {
        self.output.dropped > 0
    }

    /// The combined output, with a marker line when bytes were dropped and one per network
    /// refusal.
    pub fn output_with_marker(&self) -> Vec<u8> {
        let mut out = self.output.combined.clone();
        for refused in &self.network_refused {
            if !out.is_empty() && !out.ends_with(b"\n") {
                out.push(b'\n');
            }
            out.extend_from_slice(
                format!("[wasmhook: network policy refused {refused}]\n").as_bytes(),
            );
        }
        if self.output.dropped > 0 {
            out.extend_from_slice(
                format!(
                    "\n[wasmhook: output truncated, {} bytes dropped]\n",
                    self.output.dropped
                )
                .as_bytes(),
            );
        }
        out
    }
}

/// Store data of preview 1 modules.
pub(crate) struct P1State {
    pub(crate) wasi: WasiP1Ctx,
    limiter: StoreLimiter,
}

/// Store data of components.
pub(crate) struct P2State {
    ctx: WasiCtx,
    table: ResourceTable,
    limiter: StoreLimiter,
    http: WasiHttpCtx,
    http_policy: HttpPolicy,
}

impl WasiView for P2State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for P2State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_policy,
        }
    }
}

impl GuardedSockets for P2State {
    fn guarded_sockets(&mut self) -> (WasiSocketsCtxView<'_>, &NetworkGuard) {
        let sockets = WasiSocketsCtxView {
            ctx: self.ctx.sockets(),
            table: &mut self.table,
        };
        (sockets, &self.http_policy.guard)
    }
}

/// The error our epoch callback raises at the deadline.
#[derive(Debug, thiserror::Error)]
#[error("hook deadline reached")]
struct DeadlineReached;

impl HookRuntime {
    /// Run one call of `module`. Never fails: every problem is an [`ExecStatus`].
    pub async fn run(&self, module: &HookModule, inv: Invocation) -> ExecOutcome {
        match &inv.netns {
            Some(ns) if inv.limits.network.is_enabled() => {
                let ns = ns.clone();
                self.run_in_netns(ns, module.clone(), inv).await
            }
            _ => self.run_here(module, inv).await,
        }
    }

    /// Run the call on a new thread that entered the network namespace `ns` (namespaces
    /// are per thread, and a socket stays in the namespace it was created in). The thread
    /// runs its own single-threaded executor; cancelling or dropping this future cancels
    /// the call there.
    async fn run_in_netns(
        &self,
        ns: PathBuf,
        module: HookModule,
        mut inv: Invocation,
    ) -> ExecOutcome {
        let started = Instant::now();
        let outer = inv.cancel.take().unwrap_or_default();
        let stop = CancellationToken::new();
        let _stop_on_drop = stop.clone().drop_guard();
        inv.cancel = Some(stop.child_token());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let rt = self.clone();
        let spawned = std::thread::Builder::new()
            .name("wasmhook-netns".into())
            .spawn(move || {
                let result = (|| -> std::io::Result<ExecOutcome> {
                    let f = std::fs::File::open(&ns)?;
                    rustix::thread::move_into_link_name_space(
                        std::os::fd::AsFd::as_fd(&f),
                        Some(rustix::thread::LinkNameSpaceType::Network),
                    )?;
                    let local = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    Ok(local.block_on(rt.run_here(&module, inv)))
                })();
                let _ = tx.send(result.map_err(|e| {
                    format!("cannot enter the network namespace {}: {e}", ns.display())
                }));
            });
        let failed = |msg: String| ExecOutcome {
            status: ExecStatus::Error(msg),
            output: CapturedOutput::default(),
            duration: started.elapsed(),
            fuel_used: None,
            network_refused: Vec::new(),
        };
        if let Err(e) = spawned {
            return failed(format!("cannot start a thread for the hook: {e}"));
        }
        let result = tokio::select! {
            r = rx => r,
            _ = outer.cancelled() => {
                stop.cancel();
                // The call ends promptly once cancelled; its outcome says so.
                return ExecOutcome { status: ExecStatus::Cancelled, ..failed(String::new()) };
            }
        };
        match result {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(msg)) => failed(msg),
            Err(_) => failed("the hook's thread ended without an outcome".into()),
        }
    }

    async fn run_here(&self, module: &HookModule, inv: Invocation) -> ExecOutcome {
        let started = Instant::now();
        let output = OutputBuffer::new(inv.limits.max_output);
        let mut fuel_used = None;
        let scope = match inv.netns {
            Some(_) => PodScope::Namespace,
            None => PodScope::HostLoopback,
        };
        let guard = NetworkGuard::new(inv.limits.network.clone(), scope);
        let timeout = inv.limits.timeout;
        let status = if inv.cancel.as_ref().is_some_and(|c| c.is_cancelled()) {
            ExecStatus::Cancelled
        } else {
            let mut call =
                std::pin::pin!(self.call(module, &inv, &output, &guard, started, &mut fuel_used));
            // Most hooks end within their first poll: the guest never waits on the host, and
            // running wasm yields at every epoch tick (see `configure`). Only a call that
            // waits arms the timer and watches `cancel`, so the fast path costs neither a
            // timer registration nor a waiter.
            match futures::poll!(call.as_mut()) {
                std::task::Poll::Ready(status) => status,
                std::task::Poll::Pending => {
                    let remaining = timeout.saturating_sub(started.elapsed());
                    let cancel = inv.cancel.clone().unwrap_or_default();
                    tokio::select! {
                        r = tokio::time::timeout(remaining, call) => {
                            r.unwrap_or(ExecStatus::TimedOut(timeout))
                        }
                        _ = cancel.cancelled() => ExecStatus::Cancelled,
                    }
                }
            }
        };
        ExecOutcome {
            status,
            output: output.take(),
            duration: started.elapsed(),
            fuel_used,
            network_refused: guard.refusals(),
        }
    }

    async fn call(
        &self,
        module: &HookModule,
        inv: &Invocation,
        output: &OutputBuffer,
        guard: &Arc<NetworkGuard>,
        started: Instant,
        fuel_used: &mut Option<u64>,
    ) -> ExecStatus {
        let limits = &inv.limits;
        let prepared: Arc<Prepared> =
            match HookRuntime::prepared(&self.inner, module, limits.fuel.is_some()) {
                Ok(p) => p,
                Err(e) => return ExecStatus::Error(e),
            };
        let wasi = match wasi_builder(inv, output, guard) {
            Ok(b) => b,
            Err(e) => return ExecStatus::Error(e),
        };
        let deadline = started + limits.timeout;
        let http_policy = || HttpPolicy {
            guard: guard.clone(),
            deadline,
        };
        // Hold a pool slot for the whole call (declared before the store: dropped after it).
        let _slot = match self.inner.engines(limits.fuel.is_some()) {
            Ok(set) => match &set.slots {
                Some(slots) => match slots.clone().acquire_owned().await {
                    Ok(permit) => Some(permit),
                    Err(_) => return ExecStatus::Error("the runtime is shutting down".into()),
                },
                None => None,
            },
            Err(e) => return ExecStatus::Error(e.to_string()),
        };
        match &*prepared {
            Prepared::P1(pre) => {
                let mut wasi = wasi;
                let state = P1State {
                    wasi: wasi.build_p1(),
                    limiter: StoreLimiter::new(limits),
                };
                let mut store = Store::new(pre.module().engine(), state);
                store.limiter(|s| &mut s.limiter);
                configure(&mut store, deadline, limits.fuel);
                let result = async {
                    let instance = pre.instantiate_async(&mut store).await?;
                    let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
                    start.call_async(&mut store, ()).await
                }
                .await;
                *fuel_used = fuel_consumed(&store, limits.fuel);
                match result {
                    Ok(()) => ExecStatus::Success,
                    Err(e) => classify(e, limits),
                }
            }
            Prepared::Command(pre) => {
                let mut store = p2_store(pre.engine(), wasi, http_policy(), limits, deadline);
                let result = async {
                    let cmd = pre.instantiate_async(&mut store).await?;
                    cmd.wasi_cli_run().call_run(&mut store).await
                }
                .await;
                *fuel_used = fuel_consumed(&store, limits.fuel);
                match result {
                    Ok(Ok(())) => ExecStatus::Success,
                    Ok(Err(())) => ExecStatus::Exited(1),
                    Err(e) => classify(e, limits),
                }
            }
            Prepared::Typed(pre) => {
                let mut store = p2_store(pre.engine(), wasi, http_policy(), limits, deadline);
                let ctx = typed_context(inv);
                let result = async {
                    let hook = pre.instantiate_async(&mut store).await?;
                    hook.wasmhook_hook_handler()
                        .call_run(&mut store, &ctx)
                        .await
                }
                .await;
                *fuel_used = fuel_consumed(&store, limits.fuel);
                match result {
                    Ok(Ok(())) => ExecStatus::Success,
                    Ok(Err(msg)) => ExecStatus::Failed(msg),
                    Err(e) => classify(e, limits),
                }
            }
        }
    }
}

/// The WASI context: argv, env (with `WASMHOOK_*` winning clashes), preopens, captured
/// output, empty stdin, and sockets only as far as the network policy (`guard`) permits.
/// Nothing else of the host.
fn wasi_builder(
    inv: &Invocation,
    output: &OutputBuffer,
    guard: &Arc<NetworkGuard>,
) -> Result<WasiCtxBuilder, String> {
    let mut b = WasiCtxBuilder::new();
    b.args(&inv.args)
        .stdout(output.stdout())
        .stderr(output.stderr());
    b.envs(&hook_env(inv));
    for p in &inv.preopens {
        let perms = if p.read_only {
            FsPerms::ReadOnly
        } else {
            FsPerms::ReadWrite
        };
        b.preopened_dir(&p.host, &p.guest, perms).map_err(|e| {
            format!(
                "cannot open {} for the hook at {}: {e}",
                p.host.display(),
                p.guest
            )
        })?;
    }
    // Every socket use and name lookup goes to the guard, under `deny` too: it refuses
    // them all, and the refusals are reported.
    let guard = guard.clone();
    b.socket_addr_check(move |addr, use_| {
        let guard = guard.clone();
        Box::pin(async move { guard.check(addr, use_).await })
    })
    .allow_tcp(true)
    .allow_udp(true)
    // Which names: the guarded `resolve-addresses` (`network::add_to_linker`) decides.
    .allow_ip_name_lookup(true);
    Ok(b)
}

/// The hook's environment: the container's, then `WASMHOOK_*`, which win clashes.
fn hook_env(inv: &Invocation) -> Vec<(String, String)> {
    let ours = identity_env(inv.identity.as_ref());
    let mut env: Vec<(String, String)> = inv
        .env
        .iter()
        .filter(|(k, _)| !ours.iter().any(|(o, _)| o == k))
        .cloned()
        .collect();
    env.extend(ours);
    env
}

/// The environment and identity of a call for container `container` of `pod`: a hook's
/// (`Some(kind)`: `env` as it is, the identity adds the `WASMHOOK_*` names at run time) or a
/// probe's (`None`: no identity, see [`probe_env`]). The engine and the CRI front both build
/// their calls with it.
pub fn call_env(
    env: &[(String, String)],
    pod: &PodRef,
    container: &str,
    kind: Option<HookKind>,
) -> (Vec<(String, String)>, Option<HookIdentity>) {
    match kind {
        Some(kind) => (
            env.to_vec(),
            Some(HookIdentity {
                pod: pod.clone(),
                container: container.to_owned(),
                kind,
            }),
        ),
        None => (probe_env(env, pod, container), None),
    }
}

/// The environment of a call without a hook identity, a probe: `env` without any
/// `WASMHOOK_*`, then `WASMHOOK_POD`, `WASMHOOK_NAMESPACE` and `WASMHOOK_CONTAINER`, the names
/// a hook gets, but no `WASMHOOK_HOOK` (a probe is no hook).
fn probe_env(env: &[(String, String)], pod: &PodRef, container: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = env
        .iter()
        .filter(|(k, _)| !k.starts_with("WASMHOOK_"))
        .cloned()
        .collect();
    env.push(("WASMHOOK_POD".into(), pod.name.clone()));
    env.push(("WASMHOOK_NAMESPACE".into(), pod.namespace.clone()));
    env.push(("WASMHOOK_CONTAINER".into(), container.to_owned()));
    env
}

fn identity_env(id: Option<&HookIdentity>) -> Vec<(String, String)> {
    match id {
        None => Vec::new(),
        Some(id) => vec![
            ("WASMHOOK_POD".into(), id.pod.name.clone()),
            ("WASMHOOK_NAMESPACE".into(), id.pod.namespace.clone()),
            ("WASMHOOK_CONTAINER".into(), id.container.clone()),
            ("WASMHOOK_HOOK".into(), id.kind.as_str().into()),
        ],
    }
}

fn typed_context(inv: &Invocation) -> typed::Context {
    let (pod, namespace, uid, container, kind) = match &inv.identity {
        Some(id) => (
            id.pod.name.clone(),
            id.pod.namespace.clone(),
            id.pod.uid.clone(),
            id.container.clone(),
            id.kind,
        ),
        None => Default::default(),
    };
    let env = hook_env(inv);
    typed::Context {
        pod,
        namespace,
        uid,
        container,
        kind: match kind {
            HookKind::PostStart => typed::WitHookKind::PostStart,
            HookKind::PreStop => typed::WitHookKind::PreStop,
        },
        args: inv.args.clone(),
        env,
        volumes: inv
            .preopens
            .iter()
            .map(|p| typed::Volume {
                name: p.volume.clone().unwrap_or_default(),
                path: p.guest.clone(),
                read_only: p.read_only,
            })
            .collect(),
    }
}

fn p2_store(
    engine: &wasmtime::Engine,
    mut wasi: WasiCtxBuilder,
    http_policy: HttpPolicy,
    limits: &Limits,
    deadline: Instant,
) -> Store<P2State> {
    let state = P2State {
        ctx: wasi.build(),
        table: ResourceTable::new(),
        limiter: StoreLimiter::new(limits),
        http: WasiHttpCtx::new(),
        http_policy,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    configure(&mut store, deadline, limits.fuel);
    store
}

/// Fuel budget and the epoch deadline: at every tick the guest yields to the executor (so
/// cancellation and other tasks make progress), and past `deadline` it traps.
fn configure<T: 'static>(store: &mut Store<T>, deadline: Instant, fuel: Option<u64>) {
    if let Some(fuel) = fuel {
        store
            .set_fuel(fuel)
            .expect("fuel is enabled on the engine that prepared this module");
    }
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if Instant::now() >= deadline {
            Err(DeadlineReached.into())
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });
}

fn fuel_consumed<T: 'static>(store: &Store<T>, budget: Option<u64>) -> Option<u64> {
    let budget = budget?;
    Some(budget.saturating_sub(store.get_fuel().unwrap_or(0)))
}

/// Turn the error of an instantiation or call into a status.
fn classify(e: wasmtime::Error, limits: &Limits) -> ExecStatus {
    if let Some(exit) = e.downcast_ref::<I32Exit>() {
        return match exit.0 {
            0 => ExecStatus::Success,
            n => ExecStatus::Exited(n),
        };
    }
    if e.downcast_ref::<DeadlineReached>().is_some() {
        return ExecStatus::TimedOut(limits.timeout);
    }
    match e.downcast_ref::<LimitHit>() {
        Some(LimitHit::Memory) => return ExecStatus::MemoryLimit(limits.max_memory),
        Some(LimitHit::InitialMemory(needed)) => {
            return ExecStatus::MemoryTooSmall {
                limit: limits.max_memory,
                needed: *needed,
            }
        }
        Some(LimitHit::Table) => return ExecStatus::TableLimit(limits.max_table_elements),
        None => {}
    }
    if let Some(Trap::OutOfFuel) = e.downcast_ref::<Trap>() {
        return ExecStatus::FuelExhausted(limits.fuel.unwrap_or(0));
    }
    let mut msg = e.root_cause().to_string();
    if let Some(bt) = e.downcast_ref::<WasmBacktrace>() {
        let bt = bt.to_string();
        if !bt.trim().is_empty() {
            msg.push('\n');
            msg.push_str(bt.trim_end());
        }
    }
    ExecStatus::Trap(msg)
}
