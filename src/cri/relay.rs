//! The transparent relay: an HTTP/2 server on the proxy's socket whose every stream is
//! replayed on the runtime's connection, frames, headers and trailers as they come.
//!
//! The relay knows HTTP/2 and gRPC framing, not the CRI: it asks its [`Hooks`] whether a
//! call's body is wanted before forwarding (the few unary calls the proxy may answer or
//! watch), and whether to answer it. Everything else, streaming and future methods
//! included, is piped through untouched, so a CRI newer than this proxy still works.
//! When the kubelet resets a stream, hyper drops the call's future: a forwarded call is
//! reset upstream in turn, and an answered one is cancelled.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

use super::metrics::Metrics;
use super::upstream::Upstream;
use crate::grpc::{self, Body, Code, Status};

/// What the proxy adds to plain relaying. The defaults relay everything untouched.
pub trait Hooks: Send + Sync + 'static {
    /// Whether the relay collects the body of a call to `path` before forwarding it
    /// (unary calls only: the body is one message).
    fn wants_body(&self, _path: &str) -> bool {
        false
    }

    /// With the body collected: the proxy's own reply, or `None` to forward the body as it
    /// came.
    fn answer(
        &self,
        _path: &str,
        _body: Bytes,
    ) -> impl Future<Output = Option<Response<Body>>> + Send {
        async { None }
    }

    /// A collected call was forwarded and the runtime has answered it (its headers are in).
    fn forwarded(&self, _path: &str, _body: &Bytes) {}
}

/// The relay: the runtime connection, the hooks, the metrics.
pub struct Relay<H> {
    pub upstream: Arc<Upstream>,
    pub hooks: Arc<H>,
    pub metrics: Arc<Metrics>,
}

impl<H: Hooks> Relay<H> {
    /// One call, from the kubelet's request to the reply. Never fails: transport problems
    /// become gRPC statuses (`Unavailable` when the runtime cannot be reached).
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path().to_owned();
        let _in_flight = self.metrics.call(&path);
        let (parts, body) = req.into_parts();
        if !self.hooks.wants_body(&path) {
            return self.forward(parts, body.map_err(Into::into).boxed()).await;
        }
        let bytes = match Limited::new(body, grpc::MAX_MESSAGE + 5).collect().await {
            Ok(c) => c.to_bytes(),
            Err(e) => {
                return Status::new(Code::ResourceExhausted, format!("reading the request: {e}"))
                    .into_response()
            }
        };
        if let Some(reply) = self.answer_isolated(&path, bytes.clone()).await {
            return reply;
        }
        let reply = self.forward(parts, grpc::full_body(bytes.clone())).await;
        self.hooks.forwarded(&path, &bytes);
        reply
    }

    /// Ask the hooks in a task of its own, so a panic in them becomes an `Internal` status
    /// for this call instead of tearing down the kubelet's connection. Dropping the future
    /// (the kubelet reset the stream) aborts the task.
    async fn answer_isolated(&self, path: &str, body: Bytes) -> Option<Response<Body>> {
        let hooks = self.hooks.clone();
        let path_owned = path.to_owned();
        let mut task = AbortOnDrop(tokio::spawn(async move {
            hooks.answer(&path_owned, body).await
        }));
        match (&mut task.0).await {
            Ok(reply) => reply,
            Err(e) => {
                tracing::error!(path, error = %e, "answering a call panicked");
                Some(Status::new(Code::Internal, format!("wasmhook: {e}")).into_response())
            }
        }
    }

    async fn forward(&self, mut parts: http::request::Parts, body: Body) -> Response<Body> {
        // The runtime's connection wants an absolute URI; the authority is not looked at
        // by gRPC servers, and the kubelet sends `localhost` too.
        let pq = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        parts.uri = match format!("http://localhost{pq}").parse() {
            Ok(u) => u,
            Err(e) => {
                return Status::new(Code::Internal, format!("bad request path: {e}"))
                    .into_response()
            }
        };
        match self.upstream.send(Request::from_parts(parts, body)).await {
            Ok(resp) => resp.map(|b| b.map_err(Into::into).boxed()),
            Err(status) => status.into_response(),
        }
    }
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Accept connections on `listener` and serve them until `shutdown` is cancelled; then
/// stop accepting, let open calls finish for at most `drain`, and return.
pub async fn serve<H: Hooks>(
    relay: Arc<Relay<H>>,
    listener: UnixListener,
    shutdown: CancellationToken,
    drain: Duration,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let relay = relay.clone();
        let service = hyper::service::service_fn(move |req| {
            let relay = relay.clone();
            async move { Ok::<_, Infallible>(relay.handle(req).await) }
        });
        let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            // grpc-go's windows: 16 MiB messages flow without waiting on window updates.
            .initial_stream_window_size(1 << 20)
            .initial_connection_window_size(16 << 20)
            .max_frame_size(1 << 20)
            // containerd (grpc-go) sets no limit on concurrent calls, and long preStop hooks
            // can hold many at once: hyper's default of 200 would queue the kubelet's calls
            // behind them.
            .max_concurrent_streams(None)
            // grpc-go's default; error trailers can be long.
            .max_header_list_size(16 << 20)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "kubelet connection ended");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "calls still open {} after shutdown began; closing",
            humantime::format_duration(drain)
        );
    }
}
