//! The exec probe: `command[0]` is a WebAssembly module; exit 0 succeeds.

use std::path::Path;

use super::{ProbeContext, ProbeOutcome, ProbeResult};
use crate::wasm::HookRuntime;

pub async fn run(
    _rt: &HookRuntime,
    _module: &Path,
    _argv: &[String],
    _ctx: &ProbeContext,
) -> ProbeOutcome {
    ProbeOutcome::new(ProbeResult::Unknown, "exec probes: not yet")
}
