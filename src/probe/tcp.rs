//! The tcpSocket probe.

use k8s_openapi::api::core::v1::TCPSocketAction;

use super::{ProbeContext, ProbeOutcome, ProbeResult};

pub async fn run(_action: &TCPSocketAction, _ctx: &ProbeContext) -> ProbeOutcome {
    ProbeOutcome::new(ProbeResult::Unknown, "tcp probes: not yet")
}
