//! One pod's run: start order, supervision and restarts, termination, clean-up.
//! See the module docs of [`crate::engine`] for the sequence and invariants.
//!
//! One file per phase, each adding to `impl Pod` (as youki's `container_start.rs`,
//! `container_kill.rs`, ... do for its `Container`): [`start`] (init containers, create,
//! start, postStart), [`supervise`] (restarts and back-off), [`stop`] (the kubelet's
//! `killContainer`, pod termination, clean-up). This file holds the pod's state, the
//! helpers every phase uses, and [`run`], the sequence.

mod image;
mod probe;
mod start;
mod stop;
mod supervise;

use crate::lock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::backoff::{Backoff, PullBackoff};
use super::grace::grace_period;
use super::plan::PodPlan;
use super::status::{final_status, ContainerState, ContainerStatus, PodPhase, PodStatus};
use super::{EngineInner, StopRequest};
use crate::backend::{ContainerId, ExitStatus, Sandbox, SandboxSpec};
use crate::events::{reason, Event, EventType, HookReport, Recorder};
use crate::handlers::{ContainerHandle, HookContext, HookOutcome};
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
        .map(|c| ContainerStatus::new(c.name.clone(), c.role))
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
    let counted = statuses.iter().filter(|s| s.counts_for_readiness()).count();
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
                    pull_backoff: PullBackoff::default(),
                    done: false,
                    hook_error: None,
                })
                .collect(),
            ready: 0,
            counted,
            created: Vec::new(),
        }),
        plan,
        terminating,
        kill_now,
        start_done: CancellationToken::new(),
        grace_override,
        completed: watch::channel(0).0,
        started: watch::channel(()).0,
        kills: (0..n).map(|_| tokio::sync::Mutex::new(())).collect(),
        failed: AtomicBool::new(false),
        supervisors: Mutex::new(Vec::with_capacity(n)),
    });

    // Termination does not wait for the start to finish: a stop request during a postStart
    // stops the other containers at once (the one in postStart after its hook).
    let start = async {
        pod.start_all().await;
        pod.start_done.cancel();
    };
    let stop = async {
        tokio::select! {
            _ = pod.start_done.cancelled() => {}
            _ = pod.terminating.cancelled() => {}
        }
        pod.wait_until_done().await;
        let stop_requested = pod.terminating.is_cancelled();
        pod.terminate().await;
        stop_requested
    };
    let ((), stop_requested) = tokio::join!(start, stop);
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
    /// The image pull back-off of this container's image.
    pull_backoff: PullBackoff,
    /// Terminated for good (restart policy says no more restarts).
    done: bool,
    /// The full message of the last postStart failure, for the status.
    hook_error: Option<String>,
}

struct PodState {
    containers: Vec<Slot>,
    /// How many containers that count for the pod's readiness are ready: kept with each
    /// change ([`Pod::set_ready`]), so a readiness event costs the same in a pod of 5000
    /// containers as in a pod of 5.
    ready: usize,
    /// How many containers count for readiness (sidecars and app containers).
    counted: usize,
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
    /// Cancelled when [`Pod::start_all`] has returned: nothing more will be started.
    start_done: CancellationToken,
    grace_override: Arc<Mutex<Option<i64>>>,
    /// How many app containers are terminated for good.
    completed: watch::Sender<usize>,
    /// Bumped when a container's `started` turns true (the start of the next container
    /// waits for a sidecar's startup probe).
    started: watch::Sender<()>,
    /// One per container: held while it is being killed, so a kill by a probe, by a failed
    /// postStart and by termination never overlap (the later one finds it stopped).
    kills: Vec<tokio::sync::Mutex<()>>,
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

    fn set_state(&self, idx: usize, state: ContainerState) {
        self.state().containers[idx].status.state = state;
    }

    /// Record the exit of instance `id` of container `idx` (ignored when a newer instance
    /// has replaced it); returns the Kubernetes exit code.
    fn exited(&self, idx: usize, id: &ContainerId, r: crate::backend::Result<ExitStatus>) -> i32 {
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
        {
            let mut st = self.state();
            let slot = &mut st.containers[idx];
            if !(slot.running && slot.id.as_ref() == Some(id)) {
                return code;
            }
            slot.running = false;
            slot.status.started = false;
            slot.status.last_exit_code = Some(code);
            slot.status.state = ContainerState::terminated(code, slot.hook_error.clone());
        }
        self.set_ready(idx, id, false);
        code
    }

    /// Whether `id` is the running instance of container `idx`.
    fn is_running(&self, idx: usize, id: &ContainerId) -> bool {
        let st = self.state();
        st.containers[idx].running && st.containers[idx].id.as_ref() == Some(id)
    }

    /// Set `started` of instance `id` (a started container without a readiness probe is
    /// ready).
    fn set_started(&self, idx: usize, id: &ContainerId, started: bool) {
        if !self.is_running(idx, id) {
            return;
        }
        self.state().containers[idx].status.started = started;
        if started {
            self.started.send_replace(());
            if self.plan.containers[idx]
                .probe(crate::probe::ProbeKind::Readiness)
                .is_none()
            {
                self.set_ready(idx, id, true);
            }
        }
    }

    /// Set `ready` of container `idx` and report a change. Only a running instance `id`
    /// turns ready: a probe that was in flight when its container exited must not make the
    /// exited container ready again.
    fn set_ready(&self, idx: usize, id: &ContainerId, ready: bool) {
        let change = {
            let mut st = self.state();
            let slot = &st.containers[idx];
            let is_instance = slot.running && slot.id.as_ref() == Some(id);
            if slot.status.ready == ready || (ready && !is_instance) {
                return;
            }
            let counts = slot.status.counts_for_readiness();
            st.containers[idx].status.ready = ready;
            if counts {
                if ready {
                    st.ready += 1;
                } else {
                    st.ready -= 1;
                }
            }
            crate::events::ReadinessChange {
                timestamp: SystemTime::now(),
                pod: self.plan.pod.name.clone(),
                container: self.plan.containers[idx].name.clone(),
                ready,
                ready_containers: st.ready,
                containers: st.counted,
            }
        };
        self.recorder.readiness(change);
    }

    /// Run hook `kind` of instance `id` of container `idx`, bounded by `deadline` and
    /// `cancel`, and report it.
    async fn run_hook(
        &self,
        idx: usize,
        id: &ContainerId,
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
            target: c.hook_target(&self.plan.pod, &self.sandbox, kind, self.handle(id)),
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
            native: outcome.native,
        });
        outcome
    }

    /// Instance `id` as handlers reach it: for exec lookups and native exec.
    fn handle(&self, id: &ContainerId) -> ContainerHandle {
        ContainerHandle {
            backend: self.engine.backend.clone(),
            id: id.clone(),
        }
    }

    /// The pod's status once it is over (see [`final_status`]).
    fn final_status(&self, stop_requested: bool) -> PodStatus {
        let st = self.state();
        final_status(
            self.plan.pod.name.clone(),
            st.containers
                .iter()
                .map(|s| (s.status.clone(), s.hook_error.clone())),
            self.failed.load(Ordering::SeqCst),
            stop_requested,
        )
    }
}

fn waiting(reason: &str, message: String) -> ContainerState {
    ContainerState::Waiting {
        reason: reason.into(),
        message: Some(message),
    }
}
