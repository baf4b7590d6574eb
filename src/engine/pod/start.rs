//! Starting a pod's containers (`lifecycle-semantics.md` §4, §6): init containers one by
//! one, then sidecars and app containers in spec order, each created, started and through
//! its postStart before the next. An app container whose image is not there yet is left
//! to its supervisor, as the kubelet goes on to the next container.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::image::ImageAttempt;
use super::{waiting, Pod};
use crate::engine::plan::RestartPolicy;
use crate::engine::status::{ContainerRole, ContainerState};
use crate::events::{reason, EventType};
use crate::hook::HookKind;
use crate::lock;

impl Pod {
    /// Init containers one by one, then sidecars and app containers in order (§6).
    pub(super) async fn start_all(self: &Arc<Self>) {
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
                ContainerRole::Sidecar => {
                    self.start_container(idx).await;
                    self.supervise_in_background(idx, None);
                    self.wait_for_startup(idx).await;
                }
                ContainerRole::App => {
                    // As the kubelet's SyncPod: one attempt at the image, and a container
                    // whose image is not there yet does not hold back the ones after it;
                    // its supervisor keeps trying, then starts it.
                    match self.image_attempt(idx).await {
                        ImageAttempt::Ready => {
                            self.create_and_start(idx).await;
                            self.supervise_in_background(idx, None);
                        }
                        ImageAttempt::RetryIn(delay) => {
                            self.supervise_in_background(idx, Some(delay))
                        }
                        ImageAttempt::Terminating => return,
                    }
                }
            }
        }
    }

    /// Supervise container `idx` on a task of its own ([`Pod::supervise`]). With
    /// `image_retry`, its image is not there yet: the task starts it first, trying again
    /// for the image after that long.
    fn supervise_in_background(self: &Arc<Self>, idx: usize, image_retry: Option<Duration>) {
        let pod = self.clone();
        let task = tokio::spawn(async move {
            if let Some(delay) = image_retry {
                if pod.retry_in(delay).await {
                    pod.start_container(idx).await;
                }
            }
            pod.supervise(idx).await
        });
        lock(&self.supervisors).push(task);
    }

    /// A sidecar with a startup probe holds back the next container until the probe has
    /// succeeded (of this or a restarted instance), or termination starts.
    async fn wait_for_startup(&self, idx: usize) {
        if self.plan.containers[idx]
            .probe(crate::probe::ProbeKind::Startup)
            .is_none()
        {
            return;
        }
        let mut started = self.started.subscribe();
        while !self.state().containers[idx].status.started {
            tokio::select! {
                _ = started.changed() => {}
                _ = self.terminating.cancelled() => return,
            }
        }
    }

    /// Run a plain init container until it exits 0, retrying with back-off unless the
    /// policy is `Never`. `false` when the pod cannot go on.
    pub(super) async fn run_init(&self, idx: usize) -> bool {
        loop {
            let exit = if self.start_container(idx).await {
                let id = self.state().containers[idx].id.clone();
                match id {
                    Some(id) => tokio::select! {
                        r = self.engine.backend.wait(&id) => Some(self.exited(idx, &id, r)),
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

    /// Ensure its image, create and start container `idx`, then run its postStart (§4).
    /// `true` when the container was started (even if postStart then failed and killed it).
    pub(super) async fn start_container(&self, idx: usize) -> bool {
        self.ensure_image(idx).await && self.create_and_start(idx).await
    }

    /// [`Pod::start_container`] once the image is there.
    async fn create_and_start(&self, idx: usize) -> bool {
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
            slot.id = Some(id.clone());
            slot.running = true;
            slot.hook_error = None;
            slot.status.state = ContainerState::waiting("ContainerCreating");
        }
        if let Some(hook) = &c.post_start {
            // As the kubelet: a stop request does not interrupt postStart (only an immediate
            // kill does), and the container is not killed while it runs (termination waits
            // for this lock; the other containers do not wait).
            let _no_kill_during_post_start = self.kills[idx].lock().await;
            let outcome = self
                .run_hook(
                    idx,
                    &id,
                    HookKind::PostStart,
                    hook.settings.timeout,
                    self.kill_now.child_token(),
                )
                .await;
            if outcome.result.is_err() && self.kill_now.is_cancelled() {
                // Cut off by an immediate kill: no hook failure; termination kills it now.
                return true;
            }
            if let Err(msg) = outcome.result {
                self.event(
                    EventType::Warning,
                    reason::FAILED_POST_START_HOOK,
                    Some(idx),
                    "PostStartHook failed".into(),
                );
                self.state().containers[idx].hook_error = Some(msg.clone());
                let _ = self
                    .kill_locked(idx, Some("FailedPostStartHook"), self.grace(), None)
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
}
