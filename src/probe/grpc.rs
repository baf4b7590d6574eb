//! The grpc probe.

use k8s_openapi::api::core::v1::GRPCAction;

use super::{ProbeContext, ProbeOutcome, ProbeResult};

pub async fn run(_action: &GRPCAction, _ctx: &ProbeContext) -> ProbeOutcome {
    ProbeOutcome::new(ProbeResult::Unknown, "grpc probes: not yet")
}
