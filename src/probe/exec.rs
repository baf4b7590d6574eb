//! The exec probe: `command[0]` is a WebAssembly module, run as an exec hook is
//! ([`handlers::exec::invocation_for`]: the container's env and mounts, the wasm limits of
//! `ctx.settings`) but bounded by `timeoutSeconds`, without a hook identity, with
//! `WASMHOOK_POD`, `WASMHOOK_NAMESPACE`, `WASMHOOK_CONTAINER` (as through the CRI front).
//!
//! Judged like the kubelet's exec prober (`pkg/probe/exec/exec.go`) judges the `ExecSync`
//! reply the CRI front gives for the same outcome (`cri::status`), so a probe reads the same
//! whichever front runs it. The output is stdout then stderr (the kubelet's
//! `RunInContainer` appends them), at most 10 KiB (its `maxReadLength`):
//!
//! | outcome | result, output |
//! |---|---|
//! | exit 0 | Success, the output |
//! | exit n ≠ 0, typed `err(msg)` | Failure, the output (and `wasmhook: <msg>`) |
//! | trap, memory/table/fuel limit (a crashed or killed process to the kubelet) | Failure, the output, then `wasmhook: <why>` |
//! | past `timeoutSeconds` | Failure, `command "<argv>" timed out` (the kubelet's `TimeoutError`) |
//! | module cannot load or start | Unknown, `failed to exec in container: wasmhook: <why>` |
//! | cancelled | Unknown, `probe cancelled` |

use std::path::Path;

use super::{ProbeContext, ProbeOutcome, ProbeResult};
use crate::events::go_quote;
use crate::handlers::exec::invocation_for;
use crate::wasm::{ExecOutcome, ExecStatus, HookRuntime};

/// The kubelet's `maxReadLength` of exec probe output.
const MAX_OUTPUT: usize = 10 << 10;

pub async fn run(
    rt: &HookRuntime,
    module: &Path,
    argv: &[String],
    ctx: &ProbeContext,
) -> ProbeOutcome {
    let cannot_run = |why: String| {
        ProbeOutcome::new(
            ProbeResult::Unknown,
            format!("failed to exec in container: wasmhook: {why}"),
        )
    };
    let module = match rt.load_file(module) {
        Ok(m) => m,
        Err(e) => return cannot_run(e.to_string()),
    };
    let mut settings = ctx.settings.clone();
    settings.timeout = ctx.timeout;
    let inv = invocation_for(rt, argv, &ctx.target, &settings, None, &ctx.cancel);
    let outcome = rt.run(&module, inv).await;
    let output = |note: Option<String>| combined_output(&outcome, note);
    // Exhaustive, without a wildcard arm: a new `ExecStatus` must choose its result here.
    match &outcome.status {
        ExecStatus::Success => ProbeOutcome::new(ProbeResult::Success, output(None)),
        ExecStatus::Exited(_) => ProbeOutcome::new(ProbeResult::Failure, output(None)),
        ExecStatus::Failed(msg) => {
            ProbeOutcome::new(ProbeResult::Failure, output(Some(msg.clone())))
        }
        s @ (ExecStatus::Trap(_)
        | ExecStatus::TableLimit(_)
        | ExecStatus::MemoryLimit(_)
        | ExecStatus::MemoryTooSmall { .. }
        | ExecStatus::FuelExhausted(_)) => {
            ProbeOutcome::new(ProbeResult::Failure, output(Some(s.to_string())))
        }
        ExecStatus::TimedOut(_) => ProbeOutcome::new(
            ProbeResult::Failure,
            format!("command {} timed out", go_quote(argv.join(" ").as_bytes())),
        ),
        ExecStatus::Error(msg) => cannot_run(msg.clone()),
        ExecStatus::Cancelled => ProbeOutcome::new(ProbeResult::Unknown, "probe cancelled"),
    }
}

/// stdout, then stderr with wasmhook's notes, cut at [`MAX_OUTPUT`] bytes.
fn combined_output(outcome: &ExecOutcome, note: Option<String>) -> String {
    let mut out = outcome.output.stdout.clone();
    out.extend_from_slice(&outcome.stderr_with_notes(note));
    out.truncate(MAX_OUTPUT);
    String::from_utf8_lossy(&out).into_owned()
}
