//! The lifecycle engine: Kubernetes' container lifecycle (`lifecycle-semantics.md` §4–§7) over
//! a [`Backend`], with hooks run by [`Handlers`].
//!
//! One task per pod ([`Engine::start_pod`] → [`PodHandle`]):
//!
//! ```text
//! sandbox ─► init containers, one at a time, each to exit 0 (sidecars: started, kept running)
//!            (a sidecar with a startupProbe holds back the next one until it passes)
//!         ─► app containers in spec order, each: create, start, postStart (serial)
//!         ─► supervise: probes (startup, liveness, readiness) while an instance runs;
//!            restarts by restartPolicy with crash-loop back-off
//!         ─► terminate (stop request, or every app container done for good):
//!            all preStop hooks at once, then stop signal, grace, SIGKILL;
//!            sidecars after the mains, in reverse order, within the grace
//!         ─► remove containers and sandbox ─► final PodStatus
//! ```
//!
//! Invariants:
//! - Event reasons and messages are the kubelet's; the full hook failure message goes into a
//!   [`crate::events::HookReport`] and the container status, never into the event.
//! - A stop never outlasts the grace plus the stop signal's 2 s, except for a container whose
//!   postStart is still running (the kubelet waits for it too; it is bounded by its timeout).
//! - No hook outlives its pod: postStart hooks end at their timeout or on an immediate kill;
//!   preStop hooks when their container is gone (or at an explicit annotation timeout).
//! - Whatever happens, the sandbox is removed before [`PodHandle::wait`] returns.

pub mod backoff;
pub mod expand;
pub mod grace;
pub mod plan;
mod pod;
pub mod status;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;

pub use backoff::BackoffConfig;
pub use plan::{plan, PodPlan};
pub use status::{ContainerState, ContainerStatus, PodPhase, PodStatus};

use crate::backend::Backend;
use crate::events::Recorder;
use crate::handlers::Handlers;
use crate::hook::HookSettings;
use crate::manifest::ManifestPod;

/// Engine-wide settings. Every field has a default (`EngineConfig::default()`), so an
/// embedder sets only what it changes.
#[derive(Clone, Debug, Default)]
pub struct EngineConfig {
    /// Hook settings under the pod annotations (CLI flags set them), also the wasm limits of
    /// exec probes. Its `timeout` bounds postStart hooks only: a preStop hook's deadline is
    /// the grace period (unless an annotation sets one), a probe's its `timeoutSeconds`.
    /// Default: [`HookSettings::default`] (30 s, no fuel, 64 MiB, no network, statuses
    /// ignored).
    pub hook_defaults: HookSettings,
    /// Where exec hook modules are looked up after the manifest's directory.
    /// Default: `None`, only the manifest's directory.
    pub hooks_dir: Option<PathBuf>,
    /// The crash-loop back-off, and the image pull back-off (the kubelet uses the same
    /// constants for both). Default: the kubelet's, 10 s doubling to 300 s.
    pub backoff: BackoffConfig,
}

/// Runs pods. Cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

pub(crate) struct EngineInner {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) handlers: Handlers,
    pub(crate) config: EngineConfig,
}

/// What the owner of a pod asks of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopRequest {
    /// Keep running.
    None,
    /// Stop gracefully; `Some(n)` overrides the grace period (`kubectl delete --grace-period`).
    Graceful(Option<i64>),
    /// Kill everything now: SIGKILL, hooks cancelled.
    Immediate,
}

/// A running pod.
pub struct PodHandle {
    stop: StopHandle,
    task: tokio::task::JoinHandle<PodStatus>,
    name: String,
}

/// Stops a pod; cheap to clone, usable from any task.
#[derive(Clone)]
pub struct StopHandle(Arc<watch::Sender<StopRequest>>);

impl StopHandle {
    /// Start graceful termination (idempotent; a later call cannot change the grace).
    pub fn stop(&self, grace_override: Option<i64>) {
        self.0.send_if_modified(|s| {
            if *s == StopRequest::None {
                *s = StopRequest::Graceful(grace_override);
                true
            } else {
                false
            }
        });
    }

    /// Kill at once (a second Ctrl-C): SIGKILL, hooks cancelled.
    pub fn kill(&self) {
        self.0.send_replace(StopRequest::Immediate);
    }
}

impl PodHandle {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// See [`StopHandle::stop`].
    pub fn stop(&self, grace_override: Option<i64>) {
        self.stop.stop(grace_override);
    }

    /// See [`StopHandle::kill`].
    pub fn kill(&self) {
        self.stop.kill();
    }

    /// Wait for the pod to finish and its sandbox to be removed.
    pub async fn wait(self) -> PodStatus {
        match self.task.await {
            Ok(status) => status,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

impl Engine {
    pub fn new(backend: Arc<dyn Backend>, handlers: Handlers, config: EngineConfig) -> Self {
        Engine {
            inner: Arc::new(EngineInner {
                backend,
                handlers,
                config,
            }),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Start running a validated pod in a new task. Events and hook reports go to `recorder`.
    pub fn start_pod(&self, pod: &ManifestPod, recorder: Recorder) -> PodHandle {
        self.start_plan(plan(pod, &self.inner.config), recorder)
    }

    /// Like [`Engine::start_pod`], for a plan built (or adjusted) by the caller.
    pub fn start_plan(&self, plan: PodPlan, recorder: Recorder) -> PodHandle {
        let (stop, stop_rx) = watch::channel(StopRequest::None);
        let name = plan.pod.name.clone();
        let task = tokio::spawn(pod::run(self.inner.clone(), plan, recorder, stop_rx));
        PodHandle {
            stop: StopHandle(Arc::new(stop)),
            task,
            name,
        }
    }
}
