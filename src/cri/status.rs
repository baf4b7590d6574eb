//! How a wasm call's outcome becomes the kubelet's answer: the one place that picks exit
//! codes and gRPC status codes for `ExecSync`.
//!
//! The kubelet counts a probe only when `ExecSync` answers OK with an exit code, or
//! `DeadlineExceeded` for a probe past its timeout; any other gRPC error makes the probe
//! "errored", and errored results are thrown away (`worker.doProbe`), so a wrong code here
//! silently disables a liveness probe. Hence:
//!
//! | outcome | reply |
//! |---|---|
//! | success / `exit(n)` | OK, exit code 0 / n |
//! | typed hook `err(msg)` | OK, exit code 1, `msg` on stderr |
//! | trap, table limit | OK, exit code 134 (a crashed process: 128 + SIGABRT), reason on stderr |
//! | memory limit | OK, exit code 137 (an OOM-killed process: 128 + SIGKILL), reason on stderr |
//! | fuel exhausted | OK, exit code 152 (a CPU-limited process: 128 + SIGXCPU), reason on stderr |
//! | timed out, probe (`timeout > 0`) | `DeadlineExceeded`, containerd's text |
//! | timed out, hook (`timeout = 0`, wasmhook's own bound) | OK, exit code 124 (as `timeout(1)`), reason on stderr |
//! | cancelled (container stopped) | OK, exit code 137, as an exec killed with its container |
//! | could not start | `Unknown`, `failed to exec in container: wasmhook: ...` |
//!
//! Whatever the hook's network policy refused it is on stderr too, one
//! `wasmhook: network policy refused <what>` line each, before the reason.

use std::time::Duration;

use super::proto::ExecSyncResponse;
use crate::grpc::{Code, Status};
use crate::wasm::{ExecOutcome, ExecStatus};

/// Exit codes for the outcomes a process cannot have, chosen as a shell would report the
/// nearest native failure.
pub mod exit {
    pub const TIMED_OUT: i32 = 124;
    pub const CRASHED: i32 = 128 + 6;
    pub const KILLED: i32 = 128 + 9;
    pub const CPU_LIMIT: i32 = 128 + 24;
}

/// The `ExecSync` reply for `outcome`. `probe_timeout` is the request's timeout when it
/// had one (a probe).
pub fn reply(
    outcome: ExecOutcome,
    probe_timeout: Option<Duration>,
) -> Result<ExecSyncResponse, Status> {
    let ok = |exit_code: i32, note: Option<String>| {
        Ok(ExecSyncResponse {
            stdout: outcome.output.stdout.clone(),
            stderr: outcome.stderr_with_notes(note),
            exit_code,
        })
    };
    match &outcome.status {
        ExecStatus::Success => ok(0, None),
        ExecStatus::Exited(n) => ok(*n, None),
        ExecStatus::Failed(msg) => ok(1, Some(msg.clone())),
        s @ ExecStatus::Trap(_) => ok(exit::CRASHED, Some(s.to_string())),
        s @ ExecStatus::TableLimit(_) => ok(exit::CRASHED, Some(s.to_string())),
        s @ (ExecStatus::MemoryLimit(_) | ExecStatus::MemoryTooSmall { .. }) => {
            ok(exit::KILLED, Some(s.to_string()))
        }
        s @ ExecStatus::FuelExhausted(_) => ok(exit::CPU_LIMIT, Some(s.to_string())),
        ExecStatus::TimedOut(d) => match probe_timeout {
            Some(t) => Err(deadline_exceeded(t)),
            None => ok(
                exit::TIMED_OUT,
                Some(format!(
                    "hook timed out after {}",
                    humantime::format_duration(*d)
                )),
            ),
        },
        ExecStatus::Cancelled => ok(
            exit::KILLED,
            Some("cancelled: the container was stopped".into()),
        ),
        ExecStatus::Error(msg) => Err(cannot_run(msg)),
    }
}

/// containerd's answer to an exec past its timeout (`container_execsync.go`).
pub fn deadline_exceeded(timeout: Duration) -> Status {
    Status::new(
        Code::DeadlineExceeded,
        format!(
            "failed to exec in container: timeout {} exceeded: context deadline exceeded",
            humantime::format_duration(timeout)
        ),
    )
}

/// A problem of wasmhook's own (invalid module, compile failure): `Unknown`, the class of
/// containerd's "OCI runtime exec failed", so hooks fail and probes error as they would.
pub fn cannot_run(msg: &str) -> Status {
    Status::new(
        Code::Unknown,
        format!("failed to exec in container: wasmhook: {msg}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wasm::CapturedOutput;

    fn outcome(status: ExecStatus) -> ExecOutcome {
        ExecOutcome {
            status,
            output: CapturedOutput {
                combined: b"outerr".to_vec(),
                stdout: b"out".to_vec(),
                stderr: b"err".to_vec(),
                dropped: 0,
            },
            duration: Duration::ZERO,
            fuel_used: None,
            network_refused: Vec::new(),
        }
    }

    fn code(r: &Result<ExecSyncResponse, Status>) -> Result<i32, Code> {
        r.as_ref().map(|r| r.exit_code).map_err(|s| s.code)
    }

    /// Every row of the table in the module docs (cri-proxy-notes §6.2).
    #[test]
    fn every_outcome_has_its_reply() {
        let probe = Some(Duration::from_secs(1));
        let cases = [
            (ExecStatus::Success, None, Ok(0)),
            (ExecStatus::Exited(3), probe, Ok(3)),
            (ExecStatus::Failed("no".into()), None, Ok(1)),
            (ExecStatus::Trap("unreachable".into()), probe, Ok(134)),
            (ExecStatus::TableLimit(10), None, Ok(134)),
            (ExecStatus::MemoryLimit(1 << 20), probe, Ok(137)),
            (ExecStatus::FuelExhausted(5), probe, Ok(152)),
            (ExecStatus::TimedOut(Duration::from_secs(30)), None, Ok(124)),
            (
                ExecStatus::TimedOut(Duration::from_secs(1)),
                probe,
                Err(Code::DeadlineExceeded),
            ),
            (ExecStatus::Cancelled, None, Ok(137)),
            (ExecStatus::Error("bad".into()), probe, Err(Code::Unknown)),
        ];
        for (status, timeout, want) in cases {
            let name = status.to_string();
            assert_eq!(code(&reply(outcome(status), timeout)), want, "{name}");
        }
    }

    #[test]
    fn output_streams_stay_apart_and_reasons_go_to_stderr() {
        let r = reply(outcome(ExecStatus::Exited(2)), None).unwrap();
        assert_eq!((&r.stdout[..], &r.stderr[..]), (&b"out"[..], &b"err"[..]));
        let r = reply(outcome(ExecStatus::Trap("unreachable".into())), None).unwrap();
        assert_eq!(r.stdout, b"out");
        assert_eq!(
            String::from_utf8(r.stderr).unwrap(),
            "err\nwasmhook: trap: unreachable\n"
        );
    }

    #[test]
    fn messages_are_containerds() {
        let s = reply(
            outcome(ExecStatus::TimedOut(Duration::from_secs(2))),
            Some(Duration::from_secs(2)),
        )
        .unwrap_err();
        assert_eq!(
            s.message,
            "failed to exec in container: timeout 2s exceeded: context deadline exceeded"
        );
        let s = reply(outcome(ExecStatus::Error("x".into())), None).unwrap_err();
        assert_eq!(s.message, "failed to exec in container: wasmhook: x");
    }
}
