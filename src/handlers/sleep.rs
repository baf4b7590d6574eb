//! The `sleep` handler. (Being written: issue 5.)

use std::time::Instant;

use k8s_openapi::api::core::v1::SleepAction;

use super::{HookContext, HookOutcome};

pub async fn run(_action: &SleepAction, _ctx: &HookContext) -> HookOutcome {
    HookOutcome::failed(Instant::now(), "sleep: not implemented yet".into())
}
