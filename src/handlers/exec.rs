//! The `exec` handler: the hook's command names a WebAssembly module run by [`crate::wasm`].

use std::path::Path;
use std::time::Instant;

use super::{HookContext, HookOutcome};
use crate::wasm::HookRuntime;

pub async fn run(_rt: &HookRuntime, _module: &Path, _argv: &[String], _ctx: &HookContext) -> HookOutcome {
    HookOutcome::failed(Instant::now(), "exec: not implemented yet".into())
}
