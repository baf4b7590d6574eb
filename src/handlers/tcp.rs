//! The `tcpSocket` handler (a wasmhook extension: the kubelet rejects it as an invalid
//! handler, `lifecycle-semantics.md` §3.4). It opens a TCP connection to `host` (default: the
//! pod IP) and `port` (named ports resolved like httpGet) and closes it at once, like the
//! kubelet's TCP probe (`net.DialTimeout` + `Close`). Bounded by `settings.timeout` and
//! `cancel`.
//!
//! Also home of the dialer shared with httpGet, tcpSocket probes and grpc probes
//! ([`dial`], [`connect`]), whose errors read like Go's `net.OpError`.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::TCPSocketAction;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::net::{TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;

use super::{resolve_port, HookContext, HookOutcome, HookTarget};
use crate::events::go_quote;

pub async fn run(action: &TCPSocketAction, ctx: &HookContext) -> HookOutcome {
    let started = Instant::now();
    let port_text = match &action.port {
        IntOrString::Int(n) => n.to_string(),
        IntOrString::String(s) => s.clone(),
    };
    let fail = |err: String| {
        HookOutcome::failed(
            started,
            format!(
                "TCP lifecycle hook ({port_text}) for Container {} in Pod {} failed - error: {err}",
                go_quote(ctx.target.container.as_bytes()),
                go_quote(ctx.target.pod.to_string().as_bytes()),
            ),
        )
    };
    let port = match resolve_port(&action.port, &ctx.target) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let host = host_or_pod_ip(action.host.as_deref(), &ctx.target);
    match connect(&host, port, &ctx.target, ctx.settings.timeout, &ctx.cancel).await {
        // Dropping the stream closes the connection at once.
        Ok(_stream) => HookOutcome::ok(started),
        Err(ConnectError::Failed(e) | ConnectError::Canceled(e)) => fail(e),
    }
}

/// `host` when set and non-empty, else the pod's IP (the kubelet's default for httpGet,
/// tcpSocket and grpc).
pub(crate) fn host_or_pod_ip(host: Option<&str>, target: &HookTarget) -> String {
    match host {
        Some(h) if !h.is_empty() => h.to_owned(),
        _ => target.pod_ip.to_string(),
    }
}

/// Why [`connect`] has no connection; both carry Go's complete `net.OpError` text.
#[derive(Debug, PartialEq, Eq)]
pub enum ConnectError {
    /// Refused, unreachable, no such host, or `timeout` passed (`... i/o timeout`).
    Failed(String),
    /// `cancel` fired (`... operation was canceled`).
    Canceled(String),
}

/// Go's `net.DialTimeout("tcp", host:port, timeout)` from `target`'s network namespace,
/// also ended by `cancel`: the tcpSocket hook's and probe's connect, and the grpc probe's.
pub async fn connect(
    host: &str,
    port: u16,
    target: &HookTarget,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<TcpStream, ConnectError> {
    let deadline = super::http::deadline(timeout);
    let mut current = None;
    let stop = {
        let connect = dial(host, port, target.netns.as_deref(), &mut current);
        tokio::select! {
            biased;
            _ = cancel.cancelled() => Err(("operation was canceled", true)),
            r = connect => Ok(r),
            _ = tokio::time::sleep_until(deadline) => Err(("i/o timeout", false)),
        }
    };
    match stop {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(ConnectError::Failed(e)),
        Err((why, canceled)) => {
            let text = match current {
                Some(addr) => format!("dial tcp {addr}: {why}"),
                None => format!("dial tcp: lookup {host}: {why}"),
            };
            Err(if canceled {
                ConnectError::Canceled(text)
            } else {
                ConnectError::Failed(text)
            })
        }
    }
}

/// Connect to `host:port` like Go's `net.Dial("tcp", ...)`: an IP literal is dialled
/// directly, a name is resolved and its addresses are tried in order. `current` tracks the
/// address being dialled, so a caller whose deadline fires can name it. Errors read like Go's:
/// `dial tcp 127.0.0.1:1: connect: connection refused`, `dial tcp: lookup x: no such host`.
///
/// With `netns` (a network namespace file), the socket is created inside that namespace: a
/// socket keeps the namespace it was created in, so it is made on a short-lived thread that
/// entered the namespace (`setns` affects only the calling thread), then connected here.
/// Name lookups still use the host's resolver.
pub(crate) async fn dial(
    host: &str,
    port: u16,
    netns: Option<&Path>,
    current: &mut Option<SocketAddr>,
) -> Result<TcpStream, String> {
    *current = None;
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => match tokio::net::lookup_host((host, port)).await {
            Ok(addrs) => addrs.collect(),
            Err(e) => {
                return Err(format!(
                    "dial tcp: lookup {host}: {}",
                    lookup_error_text(&e)
                ))
            }
        },
    };
    let mut first_error = None;
    for addr in addrs {
        *current = Some(addr);
        let connected = match netns {
            None => TcpStream::connect(addr).await,
            Some(ns) => match socket_in_netns(ns, addr).await {
                Ok(socket) => socket.connect(addr).await,
                Err(e) => Err(e),
            },
        };
        match connected {
            Ok(stream) => return Ok(stream),
            Err(e) => {
                first_error
                    .get_or_insert_with(|| format!("dial tcp {addr}: connect: {}", errno_text(&e)));
            }
        }
    }
    Err(first_error.unwrap_or_else(|| format!("dial tcp: lookup {host}: no such host")))
}

/// A TCP socket for `addr`'s family, created in the network namespace `netns`.
async fn socket_in_netns(netns: &Path, addr: SocketAddr) -> io::Result<TcpSocket> {
    let netns = netns.to_path_buf();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("wasmhook-netns-dial".into())
        .spawn(move || {
            let made = (|| {
                let ns = std::fs::File::open(&netns)?;
                rustix::thread::move_into_link_name_space(
                    std::os::fd::AsFd::as_fd(&ns),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )?;
                match addr {
                    SocketAddr::V4(_) => TcpSocket::new_v4(),
                    SocketAddr::V6(_) => TcpSocket::new_v6(),
                }
            })();
            let _ = tx.send(made);
        })?;
    rx.await
        .unwrap_or_else(|_| Err(io::Error::other("network namespace thread died")))
}

/// Go's `syscall.Errno` text: the C library's message with a lowercase first letter, without
/// Rust's ` (os error N)` suffix.
pub(crate) fn errno_text(err: &io::Error) -> String {
    let text = err.to_string();
    let text = match (err.raw_os_error(), text.rfind(" (os error ")) {
        (Some(_), Some(i)) => &text[..i],
        _ => &text[..],
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn lookup_error_text(err: &io::Error) -> String {
    let text = err.to_string();
    if text.contains("not known")
        || text.contains("No address associated")
        || text.contains("nodename nor servname")
    {
        "no such host".to_owned()
    } else {
        errno_text(err)
    }
}
