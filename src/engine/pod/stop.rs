//! Stopping (`lifecycle-semantics.md` §5, §6 termination): the kubelet's `killContainer`
//! (preStop within the grace, stop signal, SIGKILL), waiting for the pod to be done,
//! terminating every running container, and removing what the pod created.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use tokio_util::sync::CancellationToken;

use super::Pod;
use crate::engine::grace::{remaining, stop_timeout};
use crate::engine::plan::{RestartPolicy, SIGKILL};
use crate::engine::status::ContainerRole;
use crate::events::{reason, EventType};
use crate::hook::HookKind;
use crate::lock;

impl Pod {
    /// The kubelet's `killContainer` (§5): Killing event, preStop within the grace, then the
    /// stop signal for what is left of it (at least 2 s), then SIGKILL. `turn` is the wait
    /// for a sidecar's turn to stop.
    pub(super) async fn kill_container(
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
    pub(super) async fn terminate(self: &Arc<Self>) {
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
