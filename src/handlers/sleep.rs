//! The `sleep` handler (`lifecycle-semantics.md` §3.3): wait `seconds`, unless the hook is
//! cancelled first.
//!
//! The kubelet's sleep ends only at `ctx.Done()`: for preStop, when its container is gone.
//! The engine gives a preStop hook no timeout of its own unless an annotation sets one
//! (`engine::plan::UNBOUNDED_PRE_STOP`) and cancels it when its container is gone, which is
//! exactly "container terminated before sleep hook finished". For postStart, wasmhook bounds
//! every hook by its timeout (an extension: the kubelet would hold the pod's start).

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::SleepAction;

use super::{HookContext, HookOutcome};
use crate::events::go_quote;

pub async fn run(action: &SleepAction, ctx: &HookContext) -> HookOutcome {
    let started = Instant::now();
    // Negative values are rejected by validation; like Go's `time.After`, they fire at once.
    let Ok(seconds) = u64::try_from(action.seconds) else {
        return HookOutcome::ok(started);
    };
    if seconds == 0 {
        return HookOutcome::ok(started);
    }
    tokio::select! {
        biased;
        _ = ctx.cancel.cancelled() => HookOutcome::failed(
            started,
            format!(
                "Sleep lifecycle hook ({}) for Container {} in Pod {} failed - error: \
                 container terminated before sleep hook finished",
                action.seconds,
                go_quote(ctx.target.container.as_bytes()),
                go_quote(ctx.target.pod.to_string().as_bytes()),
            ),
        ),
        _ = tokio::time::sleep(Duration::from_secs(seconds)) => HookOutcome::ok(started),
        // The handlers' invariant: no hook outlives its timeout (never reached by a preStop
        // sleep, which validation caps at the grace period).
        _ = tokio::time::sleep(ctx.settings.timeout) => HookOutcome::failed(
            started,
            format!(
                "Sleep lifecycle hook ({}) for Container {} in Pod {} failed - error: \
                 timed out after {}",
                action.seconds,
                go_quote(ctx.target.container.as_bytes()),
                go_quote(ctx.target.pod.to_string().as_bytes()),
                humantime::format_duration(ctx.settings.timeout),
            ),
        ),
    }
}
