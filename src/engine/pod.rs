//! One pod's run: start order, supervision and restarts, termination, clean-up.
//! See the module docs of [`crate::engine`] for the sequence and invariants.

use crate::lock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use futures::future::join_all;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::grace::{grace_period, remaining, stop_timeout};
use super::plan::{PodPlan, RestartPolicy, SIGKILL};
use super::status::{ContainerRole, ContainerState, ContainerStatus, PodPhase, PodStatus};
use super::{EngineInner, StopRequest};
use crate::backend::{ContainerId, ExitStatus, Sandbox, SandboxSpec};
use crate::events::{reason, Event, EventType, HookReport, Recorder};
use crate::handlers::{HookContext, HookOutcome};
use crate::hook::HookKind;

/// The run of one pod, from sandbox to clean-up.
pub(crate) async fn run(
    engine: Arc<EngineInner>,
    plan: PodPlan,
    recorder: Recorder,
    mut stop_rx: watch::Receiver<StopRequest>,
) -> PodStatus {
    let terminating = CancellationToken::new();
    let kill_now = CancellationToken::new();
    let grace_override = Arc::new(Mutex::new(None));
    // Turn stop requests into the two tokens the pod's tasks watch.
    let watcher = tokio::spawn({
        let (terminating, kill_now, grace_override) = (
            terminating.clone(),
            kill_now.clone(),
            grace_override.clone(),
        );
        async move {
            loop {
                match *stop_rx.borrow_and_update() {
                    StopRequest::None => {}
                    StopRequest::Graceful(g) => {
                        *lock(&grace_override) = g;
                        terminating.cancel();
                    }
                    StopRequest::Immediate => {
                        terminating.cancel();
                        kill_now.cancel();
                        return;
                    }
                }
                if stop_rx.changed().await.is_err() {
                    return;
                }
            }
        }
    });

    let statuses = plan
        .containers
        .iter()
        .map(|c| ContainerStatus {
            name: c.name.clone(),
            role: c.role,
            restart_count: 0,
            state: ContainerState::waiting("PodInitializing"),
            last_exit_code: None,
            killed: false,
        })
        .collect::<Vec<_>>();
    let spec = SandboxSpec {
        pod: plan.pod.clone(),
        volumes: plan.volumes.clone(),
    };
    let sandbox = match engine.backend.create_sandbox(&spec).await {
        Ok(s) => s,
        Err(e) => {
            recorder.record(Event::new(
                EventType::Warning,
                reason::FAILED_CREATE_POD_SANDBOX,
                &plan.pod.name,
                None,
                format!("Failed to create pod sandbox: {e}"),
            ));
            watcher.abort();
            return PodStatus {
                pod: plan.pod.name.clone(),
                phase: PodPhase::Failed,
                containers: statuses,
                stop_requested: terminating.is_cancelled(),
            };
        }
    };
    let n = plan.containers.len();
    let pod = Arc::new(Pod {
        engine,
        sandbox,
        recorder,
        state: Mutex::new(PodState {
            containers: statuses
                .into_iter()
                .map(|status| Slot {
                    status,
                    id: None,
                    running: false,
                    backoff: Backoff::default(),
                    done: false,
                    hook_error: None,
                })
                .collect(),
            created: Vec::new(),
        }),
        plan,
        terminating,
        kill_now,
        grace_override,
        completed: watch::channel(0).0,
        failed: AtomicBool::new(false),
        supervisors: Mutex::new(Vec::with_capacity(n)),
    });

    pod.start_all().await;
    pod.wait_until_done().await;
    let stop_requested = pod.terminating.is_cancelled();
    pod.terminate().await;
    pod.clean_up().await;
    watcher.abort();
    pod.final_status(stop_requested)
}

struct Slot {
    status: ContainerStatus,
    /// The current container instance, if one was created.
    id: Option<ContainerId>,
    /// Started and not yet seen exiting.
    running: bool,
    backoff: Backoff,
    /// Terminated for good (restart policy says no more restarts).
    done: bool,
    /// The full message of the last postStart failure, for the status.
    hook_error: Option<String>,
}

struct PodState {
    containers: Vec<Slot>,
    /// Every container instance created, to remove at clean-up.
    created: Vec<ContainerId>,
}

struct Pod {
    engine: Arc<EngineInner>,
    plan: PodPlan,
    sandbox: Sandbox,
    recorder: Recorder,
    state: Mutex<PodState>,
    /// Cancelled when termination starts: no more starts or restarts; postStart hooks stop.
    terminating: CancellationToken,
    /// Cancelled on an immediate kill: SIGKILL now, every hook stops.
    kill_now: CancellationToken,
    grace_override: Arc<Mutex<Option<i64>>>,
    /// How many app containers are terminated for good.
    completed: watch::Sender<usize>,
    /// An init container failed under `restartPolicy: Never`.
    failed: AtomicBool,
    supervisors: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Pod {
    fn state(&self) -> MutexGuard<'_, PodState> {
        lock(&self.state)
    }

    fn event(&self, kind: EventType, reason: &'static str, idx: Option<usize>, msg: String) {
        let container = idx.map(|i| self.plan.containers[i].name.as_str());
        self.recorder.record(Event::new(
            kind,
            reason,
            &self.plan.pod.name,
            container,
            msg,
        ));
    }

    fn grace(&self) -> i64 {
        grace_period(
            *lock(&self.grace_override),
            self.plan.deletion_grace,
            self.plan.termination_grace,
        )
    }

    /// Init containers one by one, then sidecars and app containers in order (§6).
    async fn start_all(self: &Arc<Self>) {
        for idx in 0..self.plan.containers.len() {
            if self.terminating.is_cancelled() {
                return;
            }
            match self.plan.containers[idx].role {
                ContainerRole::Init => {
                    if !self.run_init(idx).await {
                        return;
                    }
                }
                ContainerRole::Sidecar | ContainerRole::App => {
                    self.start_container(idx).await;
                    let pod = self.clone();
                    let task = tokio::spawn(async move { pod.supervise(idx).await });
                    lock(&self.supervisors).push(task);
                }
            }
        }
    }

    /// Run a plain init container until it exits 0, retrying with back-off unless the
    /// policy is `Never`. `false` when the pod cannot go on.
    async fn run_init(&self, idx: usize) -> bool {
        loop {
            let exit = if self.start_container(idx).await {
                let id = self.state().containers[idx].id.clone();
                match id {
                    Some(id) => tokio::select! {
                        r = self.engine.backend.wait(&id) => Some(self.exited(idx, r)),
                        _ = self.terminating.cancelled() => return false,
                    },
                    None => None,
                }
            } else {
                None
            };
            if exit == Some(0) {
                self.state().containers[idx].done = true;
                return true;
            }
            if self.plan.restart_policy == RestartPolicy::Never {
                self.failed.store(true, Ordering::SeqCst);
                return false;
            }
            if !self.back_off(idx).await {
                return false;
            }
        }
    }

    /// Create and start container `idx`, then run its postStart (§4). `true` when the
    /// container was started (even if postStart then failed and killed it).
    async fn start_container(&self, idx: usize) -> bool {
        let c = &self.plan.containers[idx];
        let backend = &self.engine.backend;
        let id = match backend
            .create_container(&self.sandbox, &c.container_spec(&self.sandbox))
            .await
        {
            Ok(id) => id,
            Err(e) => {
                self.event(
                    EventType::Warning,
                    reason::FAILED,
                    Some(idx),
                    format!("Error: {e}"),
                );
                self.set_state(idx, waiting("CreateContainerError", e.to_string()));
                return false;
            }
        };
        self.state().created.push(id.clone());
        self.event(
            EventType::Normal,
            reason::CREATED,
            Some(idx),
            format!("Created container: {}", c.name),
        );
        if let Err(e) = backend.start_container(&id).await {
            self.event(
                EventType::Warning,
                reason::FAILED,
                Some(idx),
                format!("Error: {e}"),
            );
            self.set_state(idx, waiting("RunContainerError", e.to_string()));
            return false;
        }
        self.event(
            EventType::Normal,
            reason::STARTED,
            Some(idx),
            format!("Started container {}", c.name),
        );
        {
            let mut st = self.state();
            let slot = &mut st.containers[idx];
            slot.id = Some(id);
            slot.running = true;
            slot.hook_error = None;
            slot.status.state = ContainerState::waiting("ContainerCreating");
        }
        if let Some(hook) = &c.post_start {
            let outcome = self
                .run_hook(
                    idx,
                    HookKind::PostStart,
                    hook.settings.timeout,
                    self.terminating.child_token(),
                )
                .await;
            if let Err(msg) = outcome.result {
                self.event(
                    EventType::Warning,
                    reason::FAILED_POST_START_HOOK,
                    Some(idx),
                    "PostStartHook failed".into(),
                );
                self.state().containers[idx].hook_error = Some(msg.clone());
                self.kill_container(idx, Some("FailedPostStartHook"), self.grace(), None)
                    .await;
                self.set_state(idx, waiting("PostStartHookError", msg));
                return true;
            }
        }
        let mut st = self.state();
        if st.containers[idx].running {
            st.containers[idx].status.state = ContainerState::Running;
        }
        true
    }

    /// Watch a sidecar or app container: on exit, restart it as the policy says.
    async fn supervise(&self, idx: usize) {
        loop {
            let (id, running) = {
                let st = self.state();
                (st.containers[idx].id.clone(), st.containers[idx].running)
            };
            let code = match id {
                Some(id) if running => {
                    let r = self.engine.backend.wait(&id).await;
                    self.exited(idx, r)
                }
                // The last start failed (create or start error).
                _ => 128,
            };
            if self.terminating.is_cancelled() {
                return;
            }
            let restart = match (self.plan.containers[idx].role, self.plan.restart_policy) {
                (ContainerRole::Sidecar, _) | (_, RestartPolicy::Always) => true,
                (_, RestartPolicy::OnFailure) => code != 0,
                (_, RestartPolicy::Never) => false,
            };
            if !restart {
                self.state().containers[idx].done = true;
                if self.plan.containers[idx].role == ContainerRole::App {
                    self.completed.send_modify(|n| *n += 1);
                }
                return;
            }
            if !self.back_off(idx).await {
                return;
            }
            let old = self.state().containers[idx].id.take();
            if let Some(old) = old {
                let _ = self.engine.backend.remove_container(&old).await;
            }
            self.start_container(idx).await;
        }
    }

    /// Wait out the crash-loop back-off before restart number `restart_count + 1` (§7).
    /// `false` when termination started meanwhile.
    async fn back_off(&self, idx: usize) -> bool {
        let c = &self.plan.containers[idx];
        let delay = self.state().containers[idx]
            .backoff
            .next_delay(&self.engine.config.backoff, Instant::now());
        if !delay.is_zero() {
            self.event(
                EventType::Warning,
                reason::BACK_OFF,
                Some(idx),
                format!(
                    "Back-off restarting failed container {} in pod {}",
                    c.name, self.plan.pod
                ),
            );
            self.set_state(
                idx,
                waiting(
                    "CrashLoopBackOff",
                    format!(
                        "back-off {} restarting failed container={} pod={}",
                        go_duration(delay),
                        c.name,
                        self.plan.pod
                    ),
                ),
            );
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.terminating.cancelled() => return false,
            }
        }
        if self.terminating.is_cancelled() {
            return false;
        }
        let mut st = self.state();
        let slot = &mut st.containers[idx];
        slot.backoff.restarted(Instant::now());
        slot.status.restart_count += 1;
        true
    }

    /// Record an exit of container `idx`; returns the Kubernetes exit code.
    fn exited(&self, idx: usize, r: crate::backend::Result<ExitStatus>) -> i32 {
        let code = match r {
            Ok(s) => s.code(),
            Err(e) => {
                tracing::warn!(
                    "waiting for container {}: {e}",
                    self.plan.containers[idx].name
                );
                128
            }
        };
        let mut st = self.state();
        let slot = &mut st.containers[idx];
        if slot.running {
            slot.running = false;
            slot.status.last_exit_code = Some(code);
            slot.status.state = ContainerState::terminated(code, slot.hook_error.clone());
        }
        code
    }

    fn set_state(&self, idx: usize, state: ContainerState) {
        self.state().containers[idx].status.state = state;
    }

    /// Run hook `kind` of container `idx`, bounded by `deadline` and `cancel`, and report it.
    async fn run_hook(
        &self,
        idx: usize,
        kind: HookKind,
        deadline: Duration,
        cancel: CancellationToken,
    ) -> HookOutcome {
        let c = &self.plan.containers[idx];
        let hook = c
            .hook(kind)
            .expect("run_hook is called for hooks that exist");
        let mut settings = hook.settings.clone();
        settings.timeout = settings.timeout.min(deadline);
        let ctx = HookContext {
            target: c.hook_target(&self.plan.pod, &self.sandbox, kind),
            settings,
            cancel,
        };
        let outcome = self.engine.handlers.run(&hook.hook, &ctx).await;
        for e in &outcome.events {
            self.recorder.record(e.clone());
        }
        self.recorder.hook(HookReport {
            timestamp: SystemTime::now(),
            pod: self.plan.pod.name.clone(),
            container: c.name.clone(),
            hook: kind.as_str(),
            handler: hook.handler_name(),
            error: outcome.result.clone().err(),
            output: outcome.output.clone(),
            duration: outcome.duration,
        });
        outcome
    }

    /// The kubelet's `killContainer` (§5): Killing event, preStop within the grace, then the
    /// stop signal for what is left of it (at least 2 s), then SIGKILL. `turn` is the wait
    /// for a sidecar's turn to stop.
    async fn kill_container(
        &self,
        idx: usize,
        message: Option<&str>,
        grace: i64,
        turn: Option<futures::future::BoxFuture<'_, ()>>,
    ) {
        let c = &self.plan.containers[idx];
        let Some(id) = self.state().containers[idx].id.clone() else {
            return;
        };
        let backend = &self.engine.backend;
        self.event(
            EventType::Normal,
            reason::KILLING,
            Some(idx),
            message.map_or_else(|| format!("Stopping container {}", c.name), str::to_owned),
        );
        let mut grace = grace;
        if c.pre_stop.is_some() && grace > 0 {
            let started = Instant::now();
            let deadline = Duration::from_secs(grace as u64);
            let outcome = self
                .run_hook(
                    idx,
                    HookKind::PreStop,
                    deadline,
                    self.kill_now.child_token(),
                )
                .await;
            if outcome.result.is_err() {
                self.event(
                    EventType::Warning,
                    reason::FAILED_PRE_STOP_HOOK,
                    Some(idx),
                    "PreStopHook failed".into(),
                );
            }
            grace = remaining(grace, started.elapsed());
        }
        if let Some(turn) = turn {
            let waited = Instant::now();
            tokio::select! {
                _ = turn => {}
                _ = self.kill_now.cancelled() => {}
            }
            grace = remaining(grace, waited.elapsed());
        }
        if !self.kill_now.is_cancelled() {
            if let Err(e) = backend.signal(&id, c.stop_signal).await {
                tracing::warn!("stop signal to {}: {e}", c.name);
            }
        }
        let exit = tokio::select! {
            r = backend.wait(&id) => Some(r),
            _ = tokio::time::sleep(stop_timeout(grace)) => None,
            _ = self.kill_now.cancelled() => None,
        };
        let exit = match exit {
            Some(r) => r,
            None => {
                self.state().containers[idx].status.killed = true;
                if let Err(e) = backend.signal(&id, SIGKILL).await {
                    tracing::warn!("SIGKILL to {}: {e}", c.name);
                }
                backend.wait(&id).await
            }
        };
        self.exited(idx, exit);
    }

    /// Wait until a stop is requested, or (policy `Never`/`OnFailure`) every app container
    /// is terminated for good, or an init container failed for good.
    async fn wait_until_done(&self) {
        if self.failed.load(Ordering::SeqCst) {
            return;
        }
        let apps = self
            .plan
            .containers
            .iter()
            .filter(|c| c.role == ContainerRole::App)
            .count();
        let mut completed = self.completed.subscribe();
        if self.plan.restart_policy == RestartPolicy::Always {
            self.terminating.cancelled().await;
            return;
        }
        tokio::select! {
            _ = self.terminating.cancelled() => {}
            _ = completed.wait_for(|n| *n >= apps) => {}
        }
    }

    /// Kill every running container (§6 termination): all preStop hooks at once, mains get
    /// the stop signal, sidecars wait for the mains and for later sidecars.
    async fn terminate(self: &Arc<Self>) {
        self.terminating.cancel();
        let grace = self.grace();
        let limit = Duration::from_secs_f64((grace as f64 * 1.5).max(10.0));
        let started = Instant::now();
        let mut warned = false;
        // A restart racing with the start of termination can leave a container running that
        // the first pass did not see: go again until nothing runs.
        loop {
            let running: Vec<usize> = {
                let st = self.state();
                (0..st.containers.len())
                    .filter(|&i| st.containers[i].running)
                    .collect()
            };
            if running.is_empty() {
                break;
            }
            let stopped: Vec<CancellationToken> =
                running.iter().map(|_| CancellationToken::new()).collect();
            let kills = running.iter().enumerate().map(|(k, &idx)| {
                let role = self.plan.containers[idx].role;
                let turn = (role == ContainerRole::Sidecar).then(|| {
                    let before: Vec<CancellationToken> = running
                        .iter()
                        .enumerate()
                        .filter(|&(_, &j)| {
                            self.plan.containers[j].role == ContainerRole::App
                                || (self.plan.containers[j].role == ContainerRole::Sidecar
                                    && j > idx)
                        })
                        .map(|(m, _)| stopped[m].clone())
                        .collect();
                    let fut: futures::future::BoxFuture<'_, ()> = Box::pin(async move {
                        for t in before {
                            t.cancelled().await;
                        }
                    });
                    fut
                });
                let done = stopped[k].clone();
                async move {
                    self.kill_container(idx, None, grace, turn).await;
                    done.cancel();
                }
            });
            let all = join_all(kills);
            tokio::pin!(all);
            if warned {
                all.await;
            } else {
                tokio::select! {
                    _ = &mut all => {}
                    _ = tokio::time::sleep(limit.saturating_sub(started.elapsed())) => {
                        warned = true;
                        self.event(
                            EventType::Warning,
                            reason::EXCEEDED_GRACE_PERIOD,
                            None,
                            "Container runtime did not kill the pod within specified grace period.".into(),
                        );
                        all.await;
                    }
                }
            }
        }
        let supervisors = std::mem::take(&mut *lock(&self.supervisors));
        for s in supervisors {
            let _ = s.await;
        }
    }

    /// Remove every container instance and the sandbox.
    async fn clean_up(&self) {
        let created = std::mem::take(&mut self.state().created);
        for id in created {
            if let Err(e) = self.engine.backend.remove_container(&id).await {
                tracing::warn!("removing container {id}: {e}");
            }
        }
        if let Err(e) = self.engine.backend.remove_sandbox(&self.sandbox).await {
            tracing::warn!("removing the sandbox of pod {}: {e}", self.plan.pod);
        }
    }

    fn final_status(&self, stop_requested: bool) -> PodStatus {
        let st = self.state();
        // The pod is over: a container caught waiting for a restart shows its last exit.
        let containers: Vec<ContainerStatus> = st
            .containers
            .iter()
            .map(|s| {
                let mut status = s.status.clone();
                if let (ContainerState::Waiting { .. }, Some(code)) =
                    (&status.state, status.last_exit_code)
                {
                    status.state = ContainerState::terminated(code, s.hook_error.clone());
                }
                status
            })
            .collect();
        let all_zero = containers
            .iter()
            .filter(|c| c.role == ContainerRole::App)
            .all(|c| c.last_exit_code == Some(0));
        let phase = if self.failed.load(Ordering::SeqCst) || !all_zero {
            PodPhase::Failed
        } else {
            PodPhase::Succeeded
        };
        PodStatus {
            pod: self.plan.pod.name.clone(),
            phase,
            containers,
            stop_requested,
        }
    }
}

fn waiting(reason: &str, message: String) -> ContainerState {
    ContainerState::Waiting {
        reason: reason.into(),
        message: Some(message),
    }
}

/// Go's `time.Duration.String()` for the durations back-off uses: `10s`, `5m0s`, `100ms`.
fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs_f64();
    let (m, s) = ((secs / 60.0).floor() as u64, secs % 60.0);
    let s = if s.fract() == 0.0 {
        format!("{}s", s as u64)
    } else {
        format!("{}s", (s * 1000.0).round() / 1000.0)
    };
    match m {
        0 => s,
        m if m >= 60 => format!("{}h{}m{s}", m / 60, m % 60),
        m => format!("{m}m{s}"),
    }
}

#[cfg(test)]
mod tests {
    use super::go_duration;
    use std::time::Duration;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
        assert_eq!(go_duration(Duration::from_secs(80)), "1m20s");
        assert_eq!(go_duration(Duration::from_millis(100)), "100ms");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
    }
}
