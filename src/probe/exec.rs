//! The exec probe: `command[0]` is found as an exec hook's is ([`handlers::exec::locate`]).
//! A module runs as an exec hook does ([`handlers::exec::invocation_for`]: the container's
//! env and mounts, the wasm limits of `ctx.settings`) but bounded by `timeoutSeconds`,
//! without a hook identity, with `WASMHOOK_POD`, `WASMHOOK_NAMESPACE`, `WASMHOOK_CONTAINER`
//! (as through the CRI front). A native command runs in the container through the backend,
//! bounded by `timeoutSeconds`, as the kubelet runs every exec probe.
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
//! | module cannot load or start, native exec cannot start | Unknown, `failed to exec in container: wasmhook: <why>` |
//! | cancelled | Unknown, `probe cancelled` |

use std::path::Path;

use super::{ProbeContext, ProbeOutcome, ProbeResult};
use crate::backend::ErrorKind;
use crate::events::go_quote;
use crate::handlers::exec::{exec_native, invocation_for, locate, Command};
use crate::handlers::{ContainerHandle, Handlers};
use crate::wasm::{ExecOutcome, ExecStatus};

/// The kubelet's `maxReadLength` of exec probe output.
const MAX_OUTPUT: usize = 10 << 10;

pub async fn run(
    h: &Handlers,
    module: Option<&Path>,
    argv: &[String],
    ctx: &ProbeContext,
) -> ProbeOutcome {
    let rt = h.wasm();
    let module = match locate(h, module, argv, &ctx.target, &ctx.settings).await {
        Ok(Command::Module(m)) => m,
        Ok(Command::Native(c)) => return run_native(&c, argv, ctx).await,
        Err(e) => return cannot_run(e),
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
        ExecStatus::TimedOut(_) => timed_out(argv),
        ExecStatus::Error(msg) => cannot_run(msg.clone()),
        ExecStatus::Cancelled => cancelled(),
    }
}

/// A native exec probe, judged as the kubelet judges `ExecSync`'s reply.
async fn run_native(c: &ContainerHandle, argv: &[String], ctx: &ProbeContext) -> ProbeOutcome {
    match exec_native(c, argv, ctx.timeout, &ctx.cancel).await {
        None => cancelled(),
        Some(Ok(out)) => {
            let mut output = out.stdout;
            output.extend_from_slice(&out.stderr);
            output.truncate(MAX_OUTPUT);
            let result = if out.exit_code == 0 {
                ProbeResult::Success
            } else {
                ProbeResult::Failure
            };
            ProbeOutcome::new(result, String::from_utf8_lossy(&output).into_owned())
        }
        Some(Err(e)) if e.kind() == ErrorKind::DeadlineExceeded => timed_out(argv),
        Some(Err(e)) => cannot_run(e.to_string()),
    }
}

fn cannot_run(why: String) -> ProbeOutcome {
    ProbeOutcome::new(
        ProbeResult::Unknown,
        format!("failed to exec in container: wasmhook: {why}"),
    )
}

fn timed_out(argv: &[String]) -> ProbeOutcome {
    ProbeOutcome::new(
        ProbeResult::Failure,
        format!("command {} timed out", go_quote(argv.join(" ").as_bytes())),
    )
}

fn cancelled() -> ProbeOutcome {
    ProbeOutcome::new(ProbeResult::Unknown, "probe cancelled")
}

/// stdout, then stderr with wasmhook's notes, cut at [`MAX_OUTPUT`] bytes.
fn combined_output(outcome: &ExecOutcome, note: Option<String>) -> String {
    let mut out = outcome.output.stdout.clone();
    out.extend_from_slice(&outcome.stderr_with_notes(note));
    out.truncate(MAX_OUTPUT);
    String::from_utf8_lossy(&out).into_owned()
}
