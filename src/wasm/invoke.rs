//! Running one hook call: a fresh store and instance under the call's limits, on this thread or
//! in a network namespace. What the guest sees is [`super::context`], how the call ended
//! [`super::outcome`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;
use wasmtime::{Store, UpdateDeadline};

use super::cache::{HookModule, ModuleKind, Prepared};
use super::context::{p1_state, p2_state, typed_context, wasi_builder, Limited};
use super::limits::{Limits, StoreLimiter};
use super::network::{HttpPolicy, NetworkGuard};
use super::outcome::{classify, DeadlineReached, ExecOutcome, ExecStatus};
use super::output::{CapturedOutput, OutputBuffer};
use super::queue::{is_pool_full, PoolQueue, ReleaseOnDrop};
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
        // Preview 1 has no sockets (nor name lookups, nor HTTP): only components get a guard.
        let guard = (module.kind() != ModuleKind::P1Command)
            .then(|| NetworkGuard::new(inv.limits.network.clone(), scope));
        let timeout = inv.limits.timeout;
        let mut stuck = StuckOpens {
            preopens: &inv.preopens,
            armed: false,
        };
        let status = if inv.cancel.as_ref().is_some_and(|c| c.is_cancelled()) {
            ExecStatus::Cancelled
        } else {
            let mut call = std::pin::pin!(self.call(
                module,
                &inv,
                &output,
                guard.as_ref(),
                started,
                &mut fuel_used
            ));
            // Most hooks end within their first poll: the guest never waits on the host, and
            // running wasm yields at every epoch tick (see `configure`). Only a call that
            // waits arms the timer and watches `cancel`, so the fast path costs neither a
            // timer registration nor a waiter.
            match futures::poll!(call.as_mut()) {
                std::task::Poll::Ready(status) => status,
                std::task::Poll::Pending => {
                    // From here on, stopping the call leaves its host call behind.
                    stuck.armed = true;
                    let remaining = timeout.saturating_sub(started.elapsed());
                    let cancel = inv.cancel.clone().unwrap_or_default();
                    // Boxed: the timer and the cancellation waiter would otherwise make every
                    // call's future larger, and it is moved and copied on every call.
                    Box::pin(async {
                        tokio::select! {
                            r = tokio::time::timeout(remaining, call) => match r {
                                Ok(status) => {
                                    stuck.armed = false;
                                    status
                                }
                                Err(_) => ExecStatus::TimedOut(timeout),
                            },
                            _ = cancel.cancelled() => ExecStatus::Cancelled,
                        }
                    })
                    .await
                }
            }
        };
        ExecOutcome {
            status,
            output: output.take(),
            duration: started.elapsed(),
            fuel_used,
            network_refused: guard.map(|g| g.take_refusals()).unwrap_or_default(),
        }
    }

    async fn call(
        &self,
        module: &HookModule,
        inv: &Invocation,
        output: &OutputBuffer,
        guard: Option<&Arc<NetworkGuard>>,
        started: Instant,
        fuel_used: &mut Option<u64>,
    ) -> ExecStatus {
        let fuel = inv.limits.fuel.is_some();
        let prepared = match HookRuntime::prepared(&self.inner, module, fuel) {
            Ok(p) => p,
            Err(e) => return ExecStatus::Error(e),
        };
        let pool = match self.inner.engines(fuel) {
            Ok(set) => set.queue.as_ref(),
            Err(e) => return ExecStatus::Error(e.to_string()),
        };
        let cx = Attempt {
            inv,
            output,
            guard,
            deadline: started + inv.limits.timeout,
        };
        // Behind calls that already wait for the pool, in order ([`super::queue`]).
        let mut place = match pool {
            Some(q) if !q.is_empty() => Some(q.enter().await),
            _ => None,
        };
        loop {
            // Only the head waits for releases; the fast path makes no waiter.
            let mut next_release =
                std::pin::pin!(place.as_ref().and(pool).map(|q| q.next_release()));
            if let Some(n) = next_release.as_mut().as_pin_mut() {
                n.enable();
            }
            let mut attempt = std::pin::pin!(cx.run(prepared, pool, fuel_used));
            // A full pool shows in the attempt's first poll: instantiating and taking a fiber
            // stack happen before the guest can first wait. An attempt still running after
            // it has its slot, so its place goes to the next in line.
            let ran = match futures::poll!(attempt.as_mut()) {
                std::task::Poll::Ready(ran) => ran,
                std::task::Poll::Pending => {
                    place = None;
                    attempt.await
                }
            };
            if let Some(status) = ran {
                return status;
            }
            // The pool was full. Queue, or (at the head already) wait for a release.
            match (pool, &place) {
                (Some(q), None) => place = Some(q.enter().await),
                (Some(_), Some(_)) => {
                    if let Some(n) = next_release.as_pin_mut() {
                        n.await;
                    }
                }
                (None, _) => return ExecStatus::Error("the instance pool is full".into()),
            }
        }
    }
}

/// One attempt at a call: a fresh WASI context, store and instance.
struct Attempt<'a> {
    inv: &'a Invocation,
    output: &'a OutputBuffer,
    /// The network guard: a component's calls have one, a preview 1 module's do not.
    guard: Option<&'a Arc<NetworkGuard>>,
    deadline: Instant,
}

impl Attempt<'_> {
    /// Run the call, or `None` when the pool was full (nothing ran; what was built is
    /// dropped).
    async fn run(
        &self,
        prepared: &Prepared,
        pool: Option<&PoolQueue>,
        fuel_used: &mut Option<u64>,
    ) -> Option<ExecStatus> {
        let (inv, limits) = (self.inv, &self.inv.limits);
        // Declared before the store, so dropped after it.
        let mut release = ReleaseOnDrop { queue: pool };
        let wasi = match wasi_builder(inv, self.output, self.guard) {
            Ok(b) => b,
            Err(e) => return Some(ExecStatus::Error(e)),
        };
        let limiter = StoreLimiter::new(limits, self.deadline);
        let http_policy = || HttpPolicy {
            guard: self
                .guard
                .expect("run_here gives every component a network guard")
                .clone(),
            deadline: self.deadline,
        };
        // Each kind of module: how its run ends as a status, and the fuel its store used.
        let (result, fuel) = match prepared {
            Prepared::P1(pre) => {
                let state = p1_state(wasi, limiter);
                let mut store = new_store(pre.module().engine(), state, limits);
                let result = async {
                    let instance = pre.instantiate_async(&mut store).await?;
                    let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
                    start.call_async(&mut store, ()).await
                }
                .await;
                let status = result.map(|()| ExecStatus::Success);
                (status, fuel_consumed(&store, limits.fuel))
            }
            Prepared::Command(pre) => {
                let state = p2_state(wasi, http_policy(), limiter);
                let mut store = new_store(pre.engine(), state, limits);
                let result = Box::pin(async {
                    let cmd = pre.instantiate_async(&mut store).await?;
                    cmd.wasi_cli_run().call_run(&mut store).await
                })
                .await;
                let status = result.map(|run| match run {
                    Ok(()) => ExecStatus::Success,
                    Err(()) => ExecStatus::Exited(1),
                });
                (status, fuel_consumed(&store, limits.fuel))
            }
            Prepared::Typed(pre) => {
                let state = p2_state(wasi, http_policy(), limiter);
                let mut store = new_store(pre.engine(), state, limits);
                let ctx = typed_context(inv);
                let result = Box::pin(async {
                    let hook = pre.instantiate_async(&mut store).await?;
                    hook.wasmhook_hook_handler()
                        .call_run(&mut store, &ctx)
                        .await
                })
                .await;
                let status = result.map(|run| match run {
                    Ok(()) => ExecStatus::Success,
                    Err(msg) => ExecStatus::Failed(msg),
                });
                (status, fuel_consumed(&store, limits.fuel))
            }
        };
        // The store is dropped by now; `release` (still alive) has not fired yet.
        if result.as_ref().is_err_and(is_pool_full) {
            release.queue = None;
            return None;
        }
        *fuel_used = fuel;
        Some(result.unwrap_or_else(|e| classify(e, limits)))
    }
}

/// Armed while a call waits on the host. Dropped armed (the call was stopped at its timeout,
/// cancelled, or the caller dropped `run`'s future) after the call's future, it lets go of
/// the blocking threads left opening a FIFO under the call's preopens ([`super::stuck`]).
struct StuckOpens<'a> {
    preopens: &'a [Preopen],
    armed: bool,
}

impl Drop for StuckOpens<'_> {
    fn drop(&mut self) {
        if self.armed {
            super::stuck::release_fifo_opens(self.preopens.iter().map(|p| p.host.as_path()));
        }
    }
}

/// The store of one call: `state` with its resource limiter, the fuel budget, and the epoch
/// deadline: at every tick the guest yields to the executor (so cancellation and other tasks
/// make progress), and past the limiter's deadline it traps.
fn new_store<T: Limited + 'static>(
    engine: &wasmtime::Engine,
    state: T,
    limits: &Limits,
) -> Store<T> {
    let mut store = Store::new(engine, state);
    store.limiter(|s| s.limiter());
    if let Some(fuel) = limits.fuel {
        store
            .set_fuel(fuel)
            .expect("fuel is enabled on the engine that prepared this module");
    }
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut store| {
        if Instant::now() >= store.data_mut().limiter().deadline {
            Err(DeadlineReached.into())
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });
    store
}

fn fuel_consumed<T: 'static>(store: &Store<T>, budget: Option<u64>) -> Option<u64> {
    let budget = budget?;
    Some(budget.saturating_sub(store.get_fuel().unwrap_or(0)))
}
