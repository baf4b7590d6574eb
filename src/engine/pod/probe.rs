//! Probing a running container (the kubelet's `prober/worker.go`): one worker per probe of
//! each container instance, with the thresholds, the startup gate and what a result does.
//!
//! - A worker starts with its instance (after postStart) and ends with it; it waits
//!   `initialDelaySeconds` from the start, then probes every `periodSeconds`.
//! - Until the startup probe has succeeded, only it runs; after that, only the others
//!   (`started` in the status). Without a startup probe, the container is started at once.
//! - A result counts once it repeats `successThreshold` / `failureThreshold` times in a row.
//!   A probe that could not run (`Unknown`) is thrown away, as the kubelet does.
//! - A failed liveness or startup probe kills the instance (`Killing`, preStop, the grace of
//!   the probe's `terminationGracePeriodSeconds` if set) and the restart policy decides what
//!   follows. A readiness result sets `ready`; without a readiness probe a started
//!   container is ready.
//! - Every failure is a Warning `Unhealthy` (`Liveness probe failed: <output>`), every
//!   warning a Warning `ProbeWarning`, as `prober.go` records them.
//! - Once the pod is terminating, probing stops: no kill or restart can follow, and a probe
//!   in flight then is dropped without an event.

use std::time::Instant;

use futures::future::select_all;
use futures::FutureExt;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use super::Pod;
use crate::backend::ContainerId;
use crate::engine::plan::{ProbePlan, RestartPolicy};
use crate::engine::status::ContainerRole;
use crate::events::{reason, EventType};
use crate::hook::HookKind;
use crate::probe::{self, ProbeContext, ProbeKind, ProbeResult};

/// What a failed liveness or startup probe asks for: kill the instance with this `Killing`
/// message and grace.
pub(super) struct ProbeKill {
    pub message: String,
    pub grace: i64,
}

impl Pod {
    /// Probe instance `id` of container `idx` until a liveness or startup probe fails (the
    /// kill it asks for), else forever. Dropped when the instance exits.
    pub(super) async fn probe_instance(&self, idx: usize, id: &ContainerId) -> ProbeKill {
        let c = &self.plan.containers[idx];
        let started_at = Instant::now();
        let has_startup = c.probe(ProbeKind::Startup).is_some();
        let (started_tx, started_rx) = watch::channel(!has_startup);
        self.set_started(idx, id, !has_startup);
        if c.probes.is_empty() {
            return std::future::pending().await;
        }
        let workers = c.probes.iter().map(|p| {
            self.probe_worker(idx, id, p, started_at, &started_tx, started_rx.clone())
                .boxed()
        });
        let (kill, _, _) = select_all(workers).await;
        kill
    }

    /// One probe's worker; returns only to ask for a kill.
    async fn probe_worker(
        &self,
        idx: usize,
        id: &ContainerId,
        plan: &ProbePlan,
        started_at: Instant,
        started_tx: &watch::Sender<bool>,
        mut started_rx: watch::Receiver<bool>,
    ) -> ProbeKill {
        let c = &self.plan.containers[idx];
        let first = tokio::time::Instant::from_std(started_at + plan.initial_delay);
        let mut ticker = tokio::time::interval_at(first, plan.period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // Built once per worker: the target (env, mounts) is the same for every run.
        let ctx = ProbeContext {
            target: c.hook_target(
                &self.plan.pod,
                &self.sandbox,
                HookKind::PostStart,
                self.handle(id),
            ),
            timeout: plan.timeout,
            settings: plan.settings.clone(),
            cancel: self.terminating.child_token(),
        };
        let (mut last, mut run) = (None, 0u32);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                // The kubelet probes readiness at once when the container has started.
                Ok(()) = started_rx.changed(), if plan.kind == ProbeKind::Readiness => {
                    if tokio::time::Instant::now() < first {
                        continue;
                    }
                }
                _ = self.terminating.cancelled() => return std::future::pending().await,
            }
            let started = *started_rx.borrow_and_update();
            if started != (plan.kind != ProbeKind::Startup) {
                continue;
            }
            let outcome = probe::run(&self.engine.handlers, &plan.handler, &ctx).await;
            if ctx.cancel.is_cancelled() {
                // The pod began terminating during the probe: its result (often `probe
                // cancelled`, by us) is moot, and no event is made of it.
                return std::future::pending().await;
            }
            let kind = plan.kind.as_str();
            let result = match outcome.result {
                ProbeResult::Success => true,
                ProbeResult::Warning => {
                    self.event(
                        EventType::Warning,
                        reason::PROBE_WARNING,
                        Some(idx),
                        format!("{kind} probe warning: {}", outcome.output),
                    );
                    true
                }
                ProbeResult::Failure => {
                    self.event(
                        EventType::Warning,
                        reason::UNHEALTHY,
                        Some(idx),
                        format!("{kind} probe failed: {}", outcome.output),
                    );
                    false
                }
                ProbeResult::Unknown => {
                    self.event(
                        EventType::Warning,
                        reason::UNHEALTHY,
                        Some(idx),
                        format!(
                            "{kind} probe errored and resulted in unknown state: {}",
                            outcome.output
                        ),
                    );
                    continue;
                }
            };
            if last == Some(result) {
                run = run.saturating_add(1);
            } else {
                (last, run) = (Some(result), 1);
            }
            let threshold = if result {
                plan.success_threshold
            } else {
                plan.failure_threshold
            };
            if run < threshold {
                continue;
            }
            match (plan.kind, result) {
                (ProbeKind::Startup, true) => {
                    self.set_started(idx, id, true);
                    started_tx.send_replace(true);
                }
                (ProbeKind::Readiness, ready) => self.set_ready(idx, id, ready),
                (ProbeKind::Liveness, true) => {}
                (ProbeKind::Startup | ProbeKind::Liveness, false) => {
                    return ProbeKill {
                        message: kill_message(c.role, &c.name, plan.kind, self.plan.restart_policy),
                        grace: self.probe_grace(plan),
                    };
                }
            }
        }
    }

    /// The grace of a kill by a failed probe (`setTerminationGracePeriod`): the pod's
    /// deletion grace, else the probe's own, else the pod's (a stop's override does not
    /// apply: the pod is not being stopped).
    fn probe_grace(&self, plan: &ProbePlan) -> i64 {
        crate::engine::grace::grace_period(
            None,
            self.plan.deletion_grace,
            plan.termination_grace.or(self.plan.termination_grace),
        )
    }
}

/// The `Killing` message of a kill by a failed liveness or startup probe
/// (`computePodActions`): `Container app failed liveness probe, will be restarted`.
fn kill_message(role: ContainerRole, name: &str, kind: ProbeKind, policy: RestartPolicy) -> String {
    let probe = match kind {
        ProbeKind::Startup => "startup",
        _ => "liveness",
    };
    match role {
        ContainerRole::App if policy == RestartPolicy::Never => {
            format!("Container {name} failed {probe} probe")
        }
        ContainerRole::App | ContainerRole::Init => {
            format!("Container {name} failed {probe} probe, will be restarted")
        }
        ContainerRole::Sidecar => format!("Init container {name} failed {probe} probe"),
    }
}
