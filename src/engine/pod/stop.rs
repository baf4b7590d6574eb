//! Stopping (`lifecycle-semantics.md` §5, §6 termination): the kubelet's `killContainer`
//! (preStop within the grace, stop signal, SIGKILL), waiting for the pod to be done,
//! terminating every running container, and removing what the pod created.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use tokio_util::sync::CancellationToken;

use super::Pod;
use crate::engine::grace::{remaining, stop_timeout, MINIMUM_GRACE_SECONDS};
use crate::engine::plan::{RestartPolicy, SIGKILL};
use crate::engine::status::ContainerRole;
use crate::events::{reason, EventType};
use crate::hook::HookKind;
use crate::lock;

/// `killPodNow`'s wait for a kill with grace 0: `max(1.5 × 0, 10 s)`.
const KILL_POD_NOW_TIMEOUT: Duration = Duration::from_secs(10);

impl Pod {
    /// The kubelet's `killContainer` (§5): Killing event, preStop, the wait for a sidecar's
    /// `turn`, then the stop signal for what is left of the grace (at least 2 s), then
    /// SIGKILL.
    ///
    /// The kubelet waits for preStop at most `grace` seconds and for the turn at most what
    /// is left of it, so a stop never outlasts the grace plus the 2 s of the stop signal. A
    /// preStop hook still running then is not an error (no event); it goes on until its
    /// container is gone and is cancelled then (a `sleep` reports `container terminated
    /// before sleep hook finished`). Its report is recorded before this returns.
    pub(super) async fn kill_container(
        &self,
        idx: usize,
        message: Option<&str>,
        grace: i64,
        turn: Option<futures::future::BoxFuture<'_, ()>>,
    ) -> Option<i32> {
        let _one_at_a_time = self.kills[idx].lock().await;
        self.kill_locked(idx, message, grace, turn).await
    }

    /// [`Pod::kill_container`] for a caller that holds `kills[idx]` (the start of a
    /// container, through its postStart). `None` when it was not running (any more).
    pub(super) async fn kill_locked(
        &self,
        idx: usize,
        message: Option<&str>,
        grace: i64,
        turn: Option<futures::future::BoxFuture<'_, ()>>,
    ) -> Option<i32> {
        let c = &self.plan.containers[idx];
        let id = self.state().containers[idx].id.clone()?;
        if !self.is_running(idx, &id) {
            // Killed meanwhile (a probe's kill, a failed postStart) or exited by itself.
            return None;
        }
        let backend = &self.engine.backend;
        self.event(
            EventType::Normal,
            reason::KILLING,
            Some(idx),
            message.map_or_else(|| format!("Stopping container {}", c.name), str::to_owned),
        );
        let run_pre_stop = c.pre_stop.is_some() && grace > 0;
        // Cancelled once the container is gone: the hook dies with it.
        let container_gone = self.kill_now.child_token();
        let pre_stop_done = CancellationToken::new();
        let pre_stop = async {
            if !run_pre_stop {
                return;
            }
            // Its own bound, if an annotation sets one. Else only a backstop: the hook ends
            // when its container is gone, at the latest the grace plus the stop signal's
            // minimum and the SIGKILL after it.
            let latest = Duration::from_secs((grace + MINIMUM_GRACE_SECONDS) as u64 + 10);
            let outcome = self
                .run_hook(idx, &id, HookKind::PreStop, latest, container_gone.clone())
                .await;
            pre_stop_done.cancel();
            // A hook that failed by itself, not one cut off with its container.
            if outcome.result.is_err() && !container_gone.is_cancelled() {
                self.event(
                    EventType::Warning,
                    reason::FAILED_PRE_STOP_HOOK,
                    Some(idx),
                    "PreStopHook failed".into(),
                );
            }
        };
        let stop = async {
            let mut grace = grace;
            if run_pre_stop {
                let started = Instant::now();
                tokio::select! {
                    _ = pre_stop_done.cancelled() => {}
                    _ = self.kill_now.cancelled() => {}
                    _ = tokio::time::sleep(Duration::from_secs(grace as u64)) => {
                        tracing::info!(
                            pod = %self.plan.pod, container = %c.name,
                            "PreStop hook not completed in grace period"
                        );
                    }
                }
                grace = remaining(grace, started.elapsed());
            }
            // `waitForTurn`: only while grace is left, and no longer than it.
            if let Some(turn) = turn.filter(|_| grace > 0) {
                let waited = Instant::now();
                tokio::select! {
                    _ = turn => {}
                    _ = self.kill_now.cancelled() => {}
                    _ = tokio::time::sleep(Duration::from_secs(grace as u64)) => {}
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
            container_gone.cancel();
            exit
        };
        let ((), exit) = tokio::join!(pre_stop, stop);
        Some(self.exited(idx, &id, exit))
    }

    /// Wait until a stop is requested, or (policy `Never`/`OnFailure`) every app container
    /// is terminated for good, or an init container failed for good.
    pub(super) async fn wait_until_done(&self) {
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
    ///
    /// An ordinary stop records no `ExceededGracePeriod`: it is bounded by the grace (plus
    /// the stop signal's 2 s) by construction. Only an immediate kill (the kubelet's
    /// `killPodNow`) that the backend has not finished within 10 s records it.
    pub(super) async fn terminate(self: &Arc<Self>) {
        self.terminating.cancel();
        let grace = self.grace();
        let mut warned = false;
        // A container started while the first pass ran (a start in flight, a restart racing
        // with the stop) is not in it: go again until nothing runs and nothing will start.
        loop {
            let running: Vec<usize> = {
                let st = self.state();
                (0..st.containers.len())
                    .filter(|&i| st.containers[i].running)
                    .collect()
            };
            if running.is_empty() {
                if self.start_done.is_cancelled() {
                    break;
                }
                self.start_done.cancelled().await;
                continue;
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
                    let _ = self.kill_container(idx, None, grace, turn).await;
                    done.cancel();
                }
            });
            let all = join_all(kills);
            tokio::pin!(all);
            let overdue = async {
                self.kill_now.cancelled().await;
                tokio::time::sleep(KILL_POD_NOW_TIMEOUT).await;
            };
            tokio::select! {
                _ = &mut all => {}
                _ = overdue, if !warned => {
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
        let supervisors = std::mem::take(&mut *lock(&self.supervisors));
        for s in supervisors {
            let _ = s.await;
        }
    }

    /// Remove every container instance and the sandbox.
    pub(super) async fn clean_up(&self) {
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
}
