//! Kubernetes-style events: the reasons and messages the kubelet records, and how the CLI
//! renders them.
//!
//! Reasons and message formats are copied from the kubelet and must never be reworded: users
//! grep for them (see `lifecycle-semantics.md` §8).

mod goquote;
mod render;

pub use goquote::{go_duration, go_quote};
pub use render::{
    render_hook_json, render_hook_text, render_json, render_readiness_json, render_readiness_text,
    render_text,
};

use std::fmt;
use std::time::SystemTime;

use serde::Serialize;
use tokio::sync::mpsc;

/// `Normal` or `Warning`, as in `core/v1` `Event.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum EventType {
    Normal,
    Warning,
}

/// The identity of a pod as the kubelet prints it in messages: `name_namespace(uid)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PodRef {
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

impl fmt::Display for PodRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}({})", self.name, self.namespace, self.uid)
    }
}

/// One event. `container` is `None` for pod-level events (e.g. `LifecycleHTTPFallback`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub timestamp: SystemTime,
    pub kind: EventType,
    pub reason: &'static str,
    pub pod: String,
    pub container: Option<String>,
    pub message: String,
}

impl Event {
    pub fn new(
        kind: EventType,
        reason: &'static str,
        pod: &str,
        container: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        Event {
            timestamp: SystemTime::now(),
            kind,
            reason,
            pod: pod.to_owned(),
            container: container.map(str::to_owned),
            message: message.into(),
        }
    }
}

/// Event reasons recorded by the kubelet (`pkg/kubelet/events/event.go`).
pub mod reason {
    pub const CREATED: &str = "Created";
    pub const STARTED: &str = "Started";
    pub const FAILED: &str = "Failed";
    pub const KILLING: &str = "Killing";
    pub const BACK_OFF: &str = "BackOff";
    pub const FAILED_POST_START_HOOK: &str = "FailedPostStartHook";
    pub const FAILED_PRE_STOP_HOOK: &str = "FailedPreStopHook";
    pub const EXCEEDED_GRACE_PERIOD: &str = "ExceededGracePeriod";
    pub const LIFECYCLE_HTTP_FALLBACK: &str = "LifecycleHTTPFallback";
    pub const FAILED_CREATE_POD_SANDBOX: &str = "FailedCreatePodSandBox";
    /// Image events of the kubelet's image manager (`PullingImage`, `PulledImage`,
    /// `FailedToInspectImage`, `ErrImageNeverPullPolicy`; a failed pull is [`FAILED`] and
    /// its back-off [`BACK_OFF`]).
    pub const PULLING: &str = "Pulling";
    pub const PULLED: &str = "Pulled";
    pub const INSPECT_FAILED: &str = "InspectFailed";
    pub const ERR_IMAGE_NEVER_PULL: &str = "ErrImageNeverPull";
    /// A probe failed (`ContainerUnhealthy`).
    pub const UNHEALTHY: &str = "Unhealthy";
    /// A probe succeeded with a warning (`ContainerProbeWarning`).
    pub const PROBE_WARNING: &str = "ProbeWarning";
}

/// The result of one hook run, reported besides the events. Events keep the kubelet's
/// generic texts (`PostStartHook failed`); this carries the full failure message and the
/// hook's output, so nothing is lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookReport {
    pub timestamp: SystemTime,
    pub pod: String,
    pub container: String,
    /// `postStart` or `preStop`.
    pub hook: &'static str,
    /// `exec`, `httpGet`, `tcpSocket` or `sleep`.
    pub handler: &'static str,
    /// `None` on success, else the kubelet-format failure message.
    pub error: Option<String>,
    /// What an exec hook printed (bounded, with a truncation marker).
    pub output: Vec<u8>,
    pub duration: std::time::Duration,
    /// An exec hook that ran as a native command in the container (not sandboxed).
    pub native: bool,
}

/// A container's readiness changed (its readiness probe, its start, its exit), with the
/// pod's readiness after the change: what `kubectl get pods` shows as `READY 1/2`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadinessChange {
    pub timestamp: SystemTime,
    pub pod: String,
    pub container: String,
    pub ready: bool,
    /// Sidecars and app containers ready, and how many there are. The pod's `Ready`
    /// condition is true when all are.
    pub ready_containers: usize,
    pub containers: usize,
}

impl ReadinessChange {
    /// The pod's `Ready` condition.
    pub fn pod_ready(&self) -> bool {
        self.ready_containers == self.containers
    }
}

/// What a [`Recorder`] delivers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Event(Event),
    Hook(HookReport),
    Readiness(ReadinessChange),
}

/// Where events and hook reports go. Cheap to clone; sending never blocks and never fails
/// (records sent after the receiver is gone are dropped, which only happens when nobody
/// listens any more).
#[derive(Clone, Debug)]
pub struct Recorder {
    tx: mpsc::UnboundedSender<Record>,
}

impl Recorder {
    /// A recorder and the receiving end of its stream.
    pub fn channel() -> (Recorder, mpsc::UnboundedReceiver<Record>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Recorder { tx }, rx)
    }

    pub fn record(&self, event: Event) {
        tracing::debug!(reason = event.reason, pod = %event.pod, container = ?event.container, "{}", event.message);
        let _ = self.tx.send(Record::Event(event));
    }

    pub fn readiness(&self, change: ReadinessChange) {
        tracing::debug!(pod = %change.pod, container = %change.container, ready = change.ready, "readiness");
        let _ = self.tx.send(Record::Readiness(change));
    }

    pub fn hook(&self, report: HookReport) {
        if let Some(e) = &report.error {
            tracing::info!(pod = %report.pod, container = %report.container, hook = report.hook, "{e}");
        }
        let _ = self.tx.send(Record::Hook(report));
    }
}
