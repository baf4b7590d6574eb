//! The connection to the runtime (containerd): one HTTP/2 connection over its unix socket,
//! shared by every call (HTTP/2 multiplexes them), made on first use and made again after
//! it breaks. The proxy starts before the runtime is up and survives its restarts: while the
//! runtime cannot be reached, calls fail with gRPC `Unavailable`, as they would against the
//! runtime itself.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::UnixStream;

use crate::grpc::{self, Body, Code, Status};

/// How long connecting to the runtime's socket may take before the call fails `Unavailable`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The runtime's socket and the live connection to it, if any.
pub struct Upstream {
    path: PathBuf,
    conn: tokio::sync::Mutex<Option<SendRequest<Body>>>,
}

impl Upstream {
    /// No connection is made here: the first call makes it.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Upstream {
            path: path.into(),
            conn: tokio::sync::Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A sender on a live connection: the current one, or a new one when there is none or
    /// it has closed.
    pub async fn sender(&self) -> Result<SendRequest<Body>, Status> {
        let mut conn = self.conn.lock().await;
        if let Some(s) = conn.as_ref() {
            if !s.is_closed() {
                return Ok(s.clone());
            }
        }
        *conn = None;
        let sender = self.connect().await?;
        *conn = Some(sender.clone());
        Ok(sender)
    }

    /// Forget the connection (after a send failed on it), so the next call reconnects.
    pub async fn reset(&self) {
        *self.conn.lock().await = None;
    }

    async fn connect(&self) -> Result<SendRequest<Body>, Status> {
        let dial = async {
            let stream = UnixStream::connect(&self.path).await?;
            let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
                // grpc-go's defaults: messages up to 16 MiB flow without stalls.
                .initial_stream_window_size(1 << 20)
                .initial_connection_window_size(16 << 20)
                .max_header_list_size(16 << 20)
                .handshake::<_, Body>(TokioIo::new(stream))
                .await
                .map_err(std::io::Error::other)?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "runtime connection ended");
                }
            });
            Ok::<_, std::io::Error>(sender)
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, dial).await {
            Ok(Ok(sender)) => Ok(sender),
            Ok(Err(e)) => Err(self.unavailable(&e.to_string())),
            Err(_) => Err(self.unavailable("i/o timeout")),
        }
    }

    /// grpc-go's wording for a runtime that cannot be dialled, so kubelet logs read the
    /// same with and without the proxy.
    fn unavailable(&self, cause: &str) -> Status {
        Status::new(
            Code::Unavailable,
            format!(
                "connection error: desc = \"transport: Error while dialing: dial unix {}: connect: {cause}\"",
                self.path.display()
            ),
        )
    }

    /// Send `req` to the runtime. A failure to send (the connection broke) resets the
    /// connection and answers `Unavailable`.
    pub async fn send(
        &self,
        req: http::Request<Body>,
    ) -> Result<http::Response<hyper::body::Incoming>, Status> {
        let mut sender = self.sender().await?;
        if sender.ready().await.is_err() {
            self.reset().await;
            sender = self.sender().await?;
        }
        match sender.send_request(req).await {
            Ok(resp) => Ok(resp),
            Err(e) => {
                if e.is_closed() || e.is_canceled() {
                    self.reset().await;
                }
                Err(Status::new(
                    Code::Unavailable,
                    format!("error reading from server: {e}"),
                ))
            }
        }
    }

    /// A unary call made by the proxy itself (context lookups), bounded by `timeout`.
    pub async fn unary<R: prost::Message + Default>(
        &self,
        path: &str,
        msg: &impl prost::Message,
        timeout: Duration,
    ) -> Result<R, Status> {
        let call = async {
            let resp = self
                .send(grpc::unary_request(path, msg, Some(timeout)))
                .await?;
            grpc::read_unary(resp).await
        };
        match tokio::time::timeout(timeout, call).await {
            Ok(r) => r,
            Err(_) => Err(Status::new(
                Code::DeadlineExceeded,
                "context deadline exceeded",
            )),
        }
    }
}
