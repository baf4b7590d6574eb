//! The httpGet probe.

use k8s_openapi::api::core::v1::HTTPGetAction;

use super::{ProbeContext, ProbeOutcome, ProbeResult};
use crate::handlers::http::HttpClient;

pub async fn run(
    _client: &HttpClient,
    _action: &HTTPGetAction,
    _ctx: &ProbeContext,
) -> ProbeOutcome {
    ProbeOutcome::new(ProbeResult::Unknown, "http probes: not yet")
}
