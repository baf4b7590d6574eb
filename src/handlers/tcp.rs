//! The `tcpSocket` handler (a wasmhook extension). (Being written: issue 5.)

use std::time::Instant;

use k8s_openapi::api::core::v1::TCPSocketAction;

use super::{HookContext, HookOutcome};

pub async fn run(_action: &TCPSocketAction, _ctx: &HookContext) -> HookOutcome {
    HookOutcome::failed(Instant::now(), "tcpSocket: not implemented yet".into())
}
