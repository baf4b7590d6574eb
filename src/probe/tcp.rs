//! The tcpSocket probe, the kubelet's `DoTCPProbe` (`pkg/probe/tcp/tcp.go`): connect to
//! `host` (default: the pod IP) and the port within `timeoutSeconds`, then close. Success has
//! no output; a failure's output is Go's dial error (`dial tcp 10.0.0.1:80: connect:
//! connection refused`, `dial tcp 10.0.0.1:80: i/o timeout`). A bad port and cancellation are
//! [`ProbeResult::Unknown`].

use k8s_openapi::api::core::v1::TCPSocketAction;

use super::{ProbeContext, ProbeOutcome, ProbeResult};
use crate::handlers::resolve_port;
use crate::handlers::tcp::{connect, host_or_pod_ip, ConnectError};

pub async fn run(action: &TCPSocketAction, ctx: &ProbeContext) -> ProbeOutcome {
    let port = match resolve_port(&action.port, &ctx.target) {
        Ok(p) => p,
        Err(e) => return ProbeOutcome::new(ProbeResult::Unknown, e),
    };
    let host = host_or_pod_ip(action.host.as_deref(), &ctx.target);
    match connect(&host, port, &ctx.target, ctx.timeout, &ctx.cancel).await {
        // Dropping the stream closes the connection at once.
        Ok(_stream) => ProbeOutcome::new(ProbeResult::Success, ""),
        Err(ConnectError::Failed(e)) => ProbeOutcome::new(ProbeResult::Failure, e),
        Err(ConnectError::Canceled(e)) => ProbeOutcome::new(ProbeResult::Unknown, e),
    }
}
