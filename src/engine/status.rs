//! Pod and container status, shaped like the API's `PodStatus`, and its stable JSON form:
//! `{"kind": "PodStatus", "pod", "phase", "stopRequested", "conditions": [{"type": "Ready",
//! "status"}], "containers": [{"name", "role", "restartCount", "started", "ready", "state",
//! "exitCode", "reason", "message"}]}`.

use serde::Serialize;

/// `PodStatus.phase`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum PodPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

/// `ContainerState`: exactly one of waiting, running, terminated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContainerState {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running,
    Terminated {
        exit_code: i32,
        reason: String,
        message: Option<String>,
    },
}

impl ContainerState {
    pub fn waiting(reason: &str) -> Self {
        ContainerState::Waiting {
            reason: reason.into(),
            message: None,
        }
    }

    /// `Completed` for exit code 0, `Error` otherwise (the reasons CRI runtimes report).
    pub fn terminated(exit_code: i32, message: Option<String>) -> Self {
        ContainerState::Terminated {
            exit_code,
            reason: if exit_code == 0 { "Completed" } else { "Error" }.into(),
            message,
        }
    }
}

/// Which list of the spec a container comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ContainerRole {
    /// `initContainers[]` without `restartPolicy: Always`.
    Init,
    /// `initContainers[]` with `restartPolicy: Always`.
    Sidecar,
    /// `containers[]`.
    App,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerStatus {
    pub name: String,
    pub role: ContainerRole,
    pub restart_count: u32,
    pub state: ContainerState,
    /// The exit code of the last termination, kept while the container restarts.
    pub last_exit_code: Option<i32>,
    /// Whether the last stop needed SIGKILL.
    pub killed: bool,
    /// The API's `started`: running, through postStart, and its startup probe (if any)
    /// succeeded. False again when the instance exits.
    pub started: bool,
    /// The API's `ready`: started, and its readiness probe (if any) succeeded last.
    pub ready: bool,
}

impl ContainerStatus {
    /// A container not yet started.
    pub fn new(name: String, role: ContainerRole) -> Self {
        ContainerStatus {
            name,
            role,
            restart_count: 0,
            state: ContainerState::waiting("PodInitializing"),
            last_exit_code: None,
            killed: false,
            started: false,
            ready: false,
        }
    }

    /// Whether the pod's readiness counts this container: sidecars and app containers.
    pub fn counts_for_readiness(&self) -> bool {
        self.role != ContainerRole::Init
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodStatus {
    pub pod: String,
    pub phase: PodPhase,
    pub containers: Vec<ContainerStatus>,
    /// The pod was stopped on request (signal, `--stop-after`), not by completing.
    pub stop_requested: bool,
}

/// The status of a pod that is over, from each container's last status and the message of
/// its last postStart failure (`hook_error`). A container caught waiting for a restart shows
/// its last exit instead. The phase is `Failed` when `init_failed` (an init container failed
/// for good) or an app container's last exit was not 0, else `Succeeded`.
pub(crate) fn final_status(
    pod: String,
    containers: impl IntoIterator<Item = (ContainerStatus, Option<String>)>,
    init_failed: bool,
    stop_requested: bool,
) -> PodStatus {
    let containers: Vec<ContainerStatus> = containers
        .into_iter()
        .map(|(mut status, hook_error)| {
            if let (ContainerState::Waiting { .. }, Some(code)) =
                (&status.state, status.last_exit_code)
            {
                status.state = ContainerState::terminated(code, hook_error);
            }
            status
        })
        .collect();
    let all_zero = containers
        .iter()
        .filter(|c| c.role == ContainerRole::App)
        .all(|c| c.last_exit_code == Some(0));
    let phase = if init_failed || !all_zero {
        PodPhase::Failed
    } else {
        PodPhase::Succeeded
    };
    PodStatus {
        pod,
        phase,
        containers,
        stop_requested,
    }
}

impl PodStatus {
    /// The pod's `Ready` condition: every sidecar and app container ready.
    pub fn ready(&self) -> bool {
        self.containers
            .iter()
            .filter(|c| c.counts_for_readiness())
            .all(|c| c.ready)
    }

    /// Stopped on request and every container stopped by its stop signal, without SIGKILL.
    pub fn stopped_cleanly(&self) -> bool {
        self.stop_requested && self.containers.iter().all(|c| !c.killed)
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonContainer<'a> {
    name: &'a str,
    role: ContainerRole,
    restart_count: u32,
    started: bool,
    ready: bool,
    state: &'static str,
    exit_code: Option<i32>,
    reason: Option<&'a str>,
    message: Option<&'a str>,
}

impl PodStatus {
    /// One JSON object, no trailing newline.
    pub fn to_json(&self) -> String {
        let containers: Vec<JsonContainer> = self
            .containers
            .iter()
            .map(|c| {
                let (state, reason, message, exit_code) = match &c.state {
                    ContainerState::Waiting { reason, message } => (
                        "waiting",
                        Some(reason.as_str()),
                        message.as_deref(),
                        c.last_exit_code,
                    ),
                    ContainerState::Running => ("running", None, None, None),
                    ContainerState::Terminated {
                        exit_code,
                        reason,
                        message,
                    } => (
                        "terminated",
                        Some(reason.as_str()),
                        message.as_deref(),
                        Some(*exit_code),
                    ),
                };
                JsonContainer {
                    name: &c.name,
                    role: c.role,
                    restart_count: c.restart_count,
                    started: c.started,
                    ready: c.ready,
                    state,
                    exit_code,
                    reason,
                    message,
                }
            })
            .collect();
        serde_json::json!({
            "kind": "PodStatus",
            "pod": self.pod,
            "phase": self.phase,
            "stopRequested": self.stop_requested,
            "conditions": [{
                "type": "Ready",
                "status": if self.ready() { "True" } else { "False" },
            }],
            "containers": containers,
        })
        .to_string()
    }

    /// A short table for people.
    pub fn to_text(&self) -> String {
        let counted = self.containers.iter().filter(|c| c.counts_for_readiness());
        let ready = counted.clone().filter(|c| c.ready).count();
        let mut out = format!(
            "pod/{}: {:?}  READY {ready}/{}  Ready={}\n",
            self.pod,
            self.phase,
            counted.count(),
            if self.ready() { "True" } else { "False" }
        );
        for c in &self.containers {
            let state = match &c.state {
                ContainerState::Waiting { reason, .. } => format!("Waiting ({reason})"),
                ContainerState::Running => "Running".to_string(),
                ContainerState::Terminated {
                    exit_code, reason, ..
                } => format!("Terminated ({reason}, exit code {exit_code})"),
            };
            out.push_str(&format!(
                "  {:<24} {:<8} restarts={:<3} ready={:<5} {state}\n",
                c.name,
                format!("{:?}", c.role).to_lowercase(),
                c.restart_count,
                c.ready
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(role: ContainerRole, state: ContainerState, last: Option<i32>) -> ContainerStatus {
        ContainerStatus {
            state,
            last_exit_code: last,
            ..ContainerStatus::new("c".into(), role)
        }
    }

    #[test]
    fn a_final_status_shows_last_exits_and_picks_the_phase() {
        let waiting = ContainerState::waiting("CrashLoopBackOff");
        let done = final_status(
            "p".into(),
            [
                (
                    status(
                        ContainerRole::Init,
                        ContainerState::terminated(0, None),
                        Some(0),
                    ),
                    None,
                ),
                (status(ContainerRole::App, waiting.clone(), Some(0)), None),
            ],
            false,
            true,
        );
        assert_eq!(done.phase, PodPhase::Succeeded);
        assert_eq!(
            done.containers[1].state,
            ContainerState::terminated(0, None)
        );
        assert!(done.stop_requested);

        let hook = Some("hook failed".to_string());
        let failed = final_status(
            "p".into(),
            [(
                status(ContainerRole::App, waiting.clone(), Some(137)),
                hook.clone(),
            )],
            false,
            false,
        );
        assert_eq!(failed.phase, PodPhase::Failed);
        assert_eq!(
            failed.containers[0].state,
            ContainerState::terminated(137, hook)
        );

        let never_ran = final_status(
            "p".into(),
            [(status(ContainerRole::App, waiting.clone(), None), None)],
            true,
            false,
        );
        assert_eq!(never_ran.phase, PodPhase::Failed);
        assert_eq!(never_ran.containers[0].state, waiting);
    }
}
