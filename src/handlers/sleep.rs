//! The `sleep` handler (`lifecycle-semantics.md` §3.3): wait `seconds`, unless the hook is
//! cancelled first.
//!
//! Bounded by `ctx.cancel` only, not by `settings.timeout`: this is the kubelet's rule (its
//! sleep ends at `ctx.Done()`, and for preStop the caller's context ends with the grace
//! period). The engine cancels the token when the container is killed or the grace period
//! runs out, which is exactly "container terminated before sleep hook finished"; a sleep
//! longer than the hook timeout is what the user asked for, and the API already caps
//! `seconds` by the grace period for preStop.

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
        // The handlers' invariant: no hook outlives its timeout (for preStop the engine has
        // already lowered it to the remaining grace).
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
