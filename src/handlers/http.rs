//! The `httpGet` handler. (Being written: issue 5.)

use std::time::Instant;

use k8s_openapi::api::core::v1::HTTPGetAction;

use super::{HookContext, HookOutcome};

/// Shared HTTP client state (rustls config). Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct HttpClient {}

impl HttpClient {
    pub fn new() -> Self {
        HttpClient {}
    }
}

pub async fn run(_client: &HttpClient, _action: &HTTPGetAction, _ctx: &HookContext) -> HookOutcome {
    HookOutcome::failed(Instant::now(), "httpGet: not implemented yet".into())
}
