//! The grpc probe, the kubelet's `grpcProber` (`pkg/probe/grpc/grpc.go`): one
//! `grpc.health.v1.Health/Check` call over plaintext HTTP/2 to the pod IP and `port`, with
//! `HealthCheckRequest{service}`, everything within `timeoutSeconds`.
//!
//! Like grpc-go's blocking dial (`grpc.WithBlock`), connecting means a TCP connection whose
//! server has spoken HTTP/2 (its SETTINGS); a refused or failed attempt is retried with
//! grpc-go's reconnect back-off (1 s, ×1.6, no jitter here) until the deadline. So, as in the
//! kubelet, a closed port reads `timeout: failed to connect service "<addr>" within <t>:
//! context deadline exceeded`, not `connection refused`.
//!
//! Every outcome is the kubelet's ("any failure is considered as a probe failure to mimic
//! grpc_health_probe"), with its text:
//!
//! | what happened | result, output |
//! |---|---|
//! | `SERVING` | Success, `service healthy` |
//! | another status | Failure, `service unhealthy (responded with "NOT_SERVING")` |
//! | not connected by the deadline | Failure, `timeout: failed to connect service "<addr>" within <t>: context deadline exceeded` |
//! | `Unimplemented` | Failure, `error: this server does not implement the grpc health protocol (grpc.health.v1.Health): <message>` |
//! | `DeadlineExceeded`, or the deadline during the call | Failure, `timeout: health rpc did not complete within <t>` |
//! | another status | Failure, `error: health rpc probe failed: rpc error: code = <code> desc = <message>` |
//!
//! Only what the kubelet cannot have is [`ProbeResult::Unknown`]: cancellation, and a port
//! outside 1–65535 (API validation rejects it).
//!
//! The connection is driven inside the probe's future, so the deadline or cancellation drops
//! the socket at once. `User-Agent` is `kube-probe/<major>.<minor>` without grpc-go's
//! ` grpc-go/<version>` suffix.

use std::pin::Pin;
use std::time::Duration;

use http::HeaderValue;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::GRPCAction;
use tokio_util::io::InspectReader;

use super::{ProbeContext, ProbeOutcome, ProbeResult};
use crate::events::{go_duration, go_quote};
use crate::grpc::{self, Code, Status};
use crate::handlers::tcp::{connect, ConnectError};

/// `grpc.health.v1.Health/Check`.
pub const CHECK_PATH: &str = "/grpc.health.v1.Health/Check";

/// `grpc.health.v1.HealthCheckRequest` (`grpc/health/v1/health.proto`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    pub service: String,
}

/// `grpc.health.v1.HealthCheckResponse`; `status` is a `ServingStatus`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    pub status: i32,
}

/// `HealthCheckResponse.ServingStatus`: `UNKNOWN`, `SERVING`, `NOT_SERVING`, `SERVICE_UNKNOWN`.
pub mod serving_status {
    pub const UNKNOWN: i32 = 0;
    pub const SERVING: i32 = 1;
    pub const NOT_SERVING: i32 = 2;
    pub const SERVICE_UNKNOWN: i32 = 3;

    /// The enum's Go `String()`: its name, or the number for a value the proto lacks.
    pub fn name(status: i32) -> String {
        match status {
            UNKNOWN => "UNKNOWN".into(),
            SERVING => "SERVING".into(),
            NOT_SERVING => "NOT_SERVING".into(),
            SERVICE_UNKNOWN => "SERVICE_UNKNOWN".into(),
            n => n.to_string(),
        }
    }
}

/// grpc-go's reconnect back-off (`backoff.DefaultConfig`, without its ±20 % jitter).
const BACKOFF_BASE: Duration = Duration::from_secs(1);
const BACKOFF_MULTIPLIER: f64 = 1.6;
const BACKOFF_MAX: Duration = Duration::from_secs(120);

/// How far the probe got, for the text when the deadline or cancellation ends it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connect,
    Call,
}

pub async fn run(action: &GRPCAction, ctx: &ProbeContext) -> ProbeOutcome {
    let Some(port) = u16::try_from(action.port).ok().filter(|p| *p > 0) else {
        return ProbeOutcome::new(
            ProbeResult::Unknown,
            format!("invalid port number: {}", action.port),
        );
    };
    // Go's `net.JoinHostPort`: an IPv6 host is bracketed.
    let addr = std::net::SocketAddr::new(ctx.target.pod_ip, port).to_string();
    let service = action.service.clone().unwrap_or_default();
    let timeout = ctx.timeout;
    let deadline = crate::handlers::http::deadline(timeout);
    let mut phase = Phase::Connect;
    let stop = {
        let work = check(ctx, port, &addr, &service, deadline, &mut phase);
        tokio::select! {
            biased;
            _ = ctx.cancel.cancelled() => None,
            r = work => Some(r),
            _ = tokio::time::sleep_until(deadline) => Some(Err(Status::new(Code::DeadlineExceeded, ""))),
        }
    };
    let failure = |text: String| ProbeOutcome::new(ProbeResult::Failure, text);
    match (stop, phase) {
        (None, _) => ProbeOutcome::new(
            ProbeResult::Unknown,
            "error: health rpc probe failed: rpc error: code = Canceled desc = context canceled",
        ),
        (Some(Err(s)), Phase::Connect) if s.code == Code::DeadlineExceeded => failure(format!(
            "timeout: failed to connect service {} within {}: context deadline exceeded",
            go_quote(addr.as_bytes()),
            go_duration(timeout)
        )),
        (Some(Ok(resp)), _) if resp.status == serving_status::SERVING => {
            ProbeOutcome::new(ProbeResult::Success, "service healthy")
        }
        (Some(Ok(resp)), _) => failure(format!(
            "service unhealthy (responded with {})",
            go_quote(serving_status::name(resp.status).as_bytes())
        )),
        (Some(Err(s)), _) => failure(match s.code {
            Code::Unimplemented => format!(
                "error: this server does not implement the grpc health protocol \
                 (grpc.health.v1.Health): {}",
                s.message
            ),
            Code::DeadlineExceeded => format!(
                "timeout: health rpc did not complete within {}",
                go_duration(timeout)
            ),
            _ => format!("error: health rpc probe failed: {s}"),
        }),
    }
}

/// Connect (retrying until the caller's deadline ends this future), then call `Check`.
async fn check(
    ctx: &ProbeContext,
    port: u16,
    addr: &str,
    service: &str,
    deadline: tokio::time::Instant,
    phase: &mut Phase,
) -> Result<HealthCheckResponse, Status> {
    let host = ctx.target.pod_ip.to_string();
    let mut backoff = BACKOFF_BASE;
    let (mut sender, mut conn) = loop {
        let attempt_started = tokio::time::Instant::now();
        if let Some(ready) = http2_connect(&host, port, ctx).await {
            break ready;
        }
        // grpc-go waits out the back-off from the start of the failed attempt.
        tokio::time::sleep_until(attempt_started + backoff).await;
        backoff = backoff.mul_f64(BACKOFF_MULTIPLIER).min(BACKOFF_MAX);
    };
    *phase = Phase::Call;
    let mut req = grpc::unary_request(
        CHECK_PATH,
        &HealthCheckRequest {
            service: service.to_owned(),
        },
        Some(deadline.saturating_duration_since(tokio::time::Instant::now())),
    );
    // grpc-go's `:authority` is the dial target; the user agent is the kubelet's.
    *req.uri_mut() = format!("http://{addr}{CHECK_PATH}")
        .parse()
        .map_err(|e| Status::new(Code::Internal, format!("bad target {addr}: {e}")))?;
    let (major, minor) = crate::KUBERNETES_VERSION;
    req.headers_mut().insert(
        http::header::USER_AGENT,
        HeaderValue::from_str(&format!("kube-probe/{major}.{minor}")).expect("ASCII"),
    );
    let call = async {
        let resp = sender.send_request(req).await.map_err(|e| {
            Status::new(Code::Unavailable, format!("error reading from server: {e}"))
        })?;
        grpc::read_unary::<HealthCheckResponse>(resp).await
    };
    // The connection is driven here, beside the call, so dropping the probe closes it.
    tokio::pin!(call);
    tokio::select! {
        biased;
        r = &mut call => return r,
        _ = conn.as_mut() => {}
    }
    // The connection ended: the call ends with what it received before, or its error.
    call.await
}

type Sender = hyper::client::conn::http2::SendRequest<grpc::Body>;
type Connection =
    Pin<Box<hyper::client::conn::http2::Connection<TokioIo<Spoke>, grpc::Body, TokioExecutor>>>;

/// One connection attempt: TCP from the pod's network namespace, the HTTP/2 handshake, and
/// the server's first bytes (its SETTINGS). `None` when any of it fails (grpc-go's transient
/// failure: the caller backs off and retries).
async fn http2_connect(host: &str, port: u16, ctx: &ProbeContext) -> Option<(Sender, Connection)> {
    // The caller's deadline bounds the attempt, so `connect` needs no bound of its own.
    let unbounded = Duration::MAX;
    let tcp = match connect(host, port, &ctx.target, unbounded, &ctx.cancel).await {
        Ok(tcp) => tcp,
        Err(ConnectError::Failed(e) | ConnectError::Canceled(e)) => {
            tracing::debug!(error = %e, "grpc probe: connect failed");
            return None;
        }
    };
    let _ = tcp.set_nodelay(true);
    let (spoke_tx, mut spoke_rx) = tokio::sync::watch::channel(false);
    let mut spoke_tx = Some(spoke_tx);
    let io: Spoke = InspectReader::new(
        tcp,
        Box::new(move |read: &[u8]| {
            if !read.is_empty() {
                if let Some(tx) = spoke_tx.take() {
                    let _ = tx.send(true);
                }
            }
        }),
    );
    let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake::<_, grpc::Body>(TokioIo::new(io))
        .await
        .ok()?;
    let mut conn = Box::pin(conn);
    // Drive the connection until the server has said something, or the connection ended.
    tokio::select! {
        biased;
        _ = spoke_rx.wait_for(|spoke| *spoke) => Some((sender, conn)),
        _ = conn.as_mut() => None,
    }
}

/// A TCP stream that notes the first bytes read from the server: the closure sends `true` on
/// its first non-empty read and then holds nothing.
type Spoke = InspectReader<tokio::net::TcpStream, Box<dyn FnMut(&[u8]) + Send>>;

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn health_messages_match_the_proto() {
        // service = "a" is field 1, length-delimited; status = NOT_SERVING is field 1, varint.
        let req = HealthCheckRequest {
            service: "a".into(),
        };
        assert_eq!(req.encode_to_vec(), [0x0a, 1, b'a']);
        let resp = HealthCheckResponse::decode(&[0x08, 2][..]).unwrap();
        assert_eq!(resp.status, serving_status::NOT_SERVING);
        assert_eq!(serving_status::name(resp.status), "NOT_SERVING");
        assert_eq!(serving_status::name(7), "7");
    }
}
