//! `drain`: a preStop hook that lets the application drain before it is stopped.
//!
//! ```text
//! command: ["drain.wasm", "<dir>", "[timeout=30s]", "[done=drained]", "[marker=draining]"]
//! ```
//!
//! 1. `<dir>` must be a volume mount shared with the application (e.g. an `emptyDir`).
//! 2. Removes a stale `<dir>/<done>` left by an earlier run (an `emptyDir` outlives container
//!    restarts), then writes `<dir>/<marker>` containing `draining <pod>/<container>`: the
//!    application's cue to stop taking work.
//! 3. Waits, checking every 100 ms, for the application to create `<dir>/<done>`, printing
//!    progress about once a second, for at most `<timeout>` (`500ms`, `30s`, `2m`, `1m30s`, or
//!    plain seconds).
//!
//! Exit codes: 0 the application finished draining in time; 3 it did not (`error: application
//! did not finish draining: ...`); 2 missing or invalid arguments; 1 the volume is not visible
//! or a marker cannot be written or checked. Keep `<timeout>` below the pod's
//! `terminationGracePeriodSeconds` and the engine's hook timeout, or the hook is cut short
//! before it can report.

use std::fs;
use std::io;
use std::time::Duration;

use hooks_sdk::wait::{file_exists, poll_until, DEFAULT_POLL_INTERVAL};
use hooks_sdk::{info, parse_duration, warn, Context, HookError, ResultExt};

/// Exit code when the application does not finish in time.
const EXIT_TIMEOUT: i32 = 3;

fn main() {
    hooks_sdk::main(drain);
}

fn drain(ctx: &Context) -> Result<(), HookError> {
    let dir = ctx.volume(ctx.require_param(0, "shared volume directory")?)?;
    let timeout = match ctx.param(1) {
        Some(t) => parse_duration(t).map_err(|e| e.context("timeout").with_exit_code(2))?,
        None => Duration::from_secs(30),
    };
    let done = dir.join(ctx.param(2).unwrap_or("drained"));
    let marker = dir.join(ctx.param(3).unwrap_or("draining"));

    match fs::remove_file(&done) {
        Ok(()) => warn!("removed stale {} from an earlier run", done.display()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(HookError::from(e).context(format!("removing stale {}", done.display())))
        }
    }
    fs::write(
        &marker,
        format!("draining {}/{}\n", ctx.pod(), ctx.container()),
    )
    .with_context(|| format!("writing {}", marker.display()))?;
    info!(
        "{}/{}: wrote {}, waiting up to {timeout:?} for {}",
        ctx.pod(),
        ctx.container(),
        marker.display(),
        done.display()
    );

    let mut next_report = Duration::from_secs(1);
    let waited = poll_until(timeout, DEFAULT_POLL_INTERVAL, |elapsed| {
        if elapsed >= next_report {
            info!("still draining after {}s", elapsed.as_secs());
            next_report += Duration::from_secs(1);
        }
        file_exists(&done)
    })
    .map_err(|e| {
        if e.message().starts_with("condition not met") {
            HookError::new(format!(
                "application did not finish draining: {} did not appear within {timeout:?}",
                done.display()
            ))
            .with_exit_code(EXIT_TIMEOUT)
        } else {
            e
        }
    })?;
    info!("drained after {}ms", waited.as_millis());
    Ok(())
}
