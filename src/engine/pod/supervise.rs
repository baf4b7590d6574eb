//! Supervising sidecars and app containers (`lifecycle-semantics.md` §7): restarts by the
//! restart policy, with the crash-loop back-off between them.

use std::time::Instant;

use super::{waiting, Pod};
use crate::engine::plan::RestartPolicy;
use crate::engine::status::ContainerRole;
use crate::events::go_duration;
use crate::events::{reason, EventType};

impl Pod {
    /// Watch a sidecar or app container: on exit, restart it as the policy says.
    pub(super) async fn supervise(&self, idx: usize) {
        loop {
            let (id, running) = {
                let st = self.state();
                (st.containers[idx].id.clone(), st.containers[idx].running)
            };
            let code = match id {
                Some(id) if running => {
                    // Probes run as long as the instance does; a failed liveness or startup
                    // probe kills it, and the restart policy below decides what follows.
                    let exit = tokio::select! {
                        r = self.engine.backend.wait(&id) => Ok(r),
                        kill = self.probe_instance(idx, &id) => Err(kill),
                    };
                    match exit {
                        Ok(r) => self.exited(idx, &id, r),
                        // `None`: termination killed it first and recorded the exit.
                        Err(kill) => match self
                            .kill_container(idx, Some(&kill.message), kill.grace, None)
                            .await
                        {
                            Some(code) => code,
                            None => self.state().containers[idx]
                                .status
                                .last_exit_code
                                .unwrap_or(128),
                        },
                    }
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
    pub(super) async fn back_off(&self, idx: usize) -> bool {
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
}
