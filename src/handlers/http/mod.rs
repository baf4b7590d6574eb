//! The `httpGet` handler, with the kubelet's semantics (`lifecycle-semantics.md` §3.2,
//! kubelet `pkg/kubelet/lifecycle/handlers.go` + `pkg/probe/http/request.go` and the Go
//! `net/http` client it runs on). [`get`] is the one request path of httpGet hooks and
//! httpGet probes (`crate::probe::http`); what differs between the two is [`Caller`]
//! (user agent, compression, `Connection: close`, fallback, how the final body is read).
//! What follows describes a hook's request:
//!
//! - **Request.** `GET <scheme>://<host>:<port><path>`; `path` is a URL reference (`?query`
//!   works, a missing `/` is added), IPv6 hosts are bracketed. `httpHeaders` keep their order
//!   and repeats; `User-Agent: kube-lifecycle/<major>.<minor>` and `Accept: */*` are added
//!   unless supplied (an empty `Accept` removes it); a `Host` header becomes the request's
//!   Host while TCP still goes to the URL host. Like Go, header names are written in
//!   canonical case (`X-Foo`), `Accept-Encoding: gzip` is added when no `Accept-Encoding` or
//!   `Range` is given, and user `Content-Length`/`Transfer-Encoding`/`Trailer` are not sent.
//! - **Connection.** A new TCP connection per request (no pool, unlike the kubelet's
//!   keep-alive client: hooks are rare and a pooled connection to a dead pod is useless).
//!   HTTPS never verifies certificates (see [`tls`]).
//! - **Redirects** (301/302/303/307/308 with a `Location`) are followed while the hostname
//!   equals the original one (port and scheme may change); Go's `Referer` is set and the Host
//!   override survives relative redirects only. At most 10 requests are made: a 10th redirect
//!   fails with `stopped after 10 redirects` (Go's `len(via) >= 10`). A cross-host redirect is
//!   not followed and the 3xx counts as the final response.
//! - **Result.** Only transport errors fail; the status is ignored unless
//!   [`HttpStatusMode::Strict`]. The final body is read and dropped up to 10 KiB when its
//!   length is unknown or at most 10 KiB, then the connection is closed.
//! - **HTTPS→HTTP fallback.** If the server answers the ClientHello in plain HTTP, the
//!   original request is retried once over `http` without `Authorization`; on success the
//!   outcome carries a Warning `LifecycleHTTPFallback` event on the pod, on failure the
//!   original error is reported.
//! - **[ext] Bounds.** The whole call (fallback included) ends at `settings.timeout` or
//!   `cancel`, with Go's `http.Client.Timeout` texts (the kubelet has no timeout here).
//!
//! Errors read like Go's `*url.Error`: `Get "<url>": <cause>`.
//!
//! Here: one request's life (redirects, fallback, deadline), which shares one `Progress`
//! state and one error shape. Apart: what the request is ([`request`]: who asks, the
//! headers), the URL (`url.rs`) and TLS (`tls.rs`).

mod request;
mod tls;
mod url;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::LOCATION;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::{Body, Bytes};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::HTTPGetAction;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;

pub use self::request::Caller;
use self::request::{BodyRead, Spec};
use self::url::Url;
use super::tcp::{dial, errno_text};
use super::{HookContext, HookOutcome, HookTarget};
use crate::events::{go_quote, reason, Event, EventType};
use crate::hook::HttpStatusMode;

/// The kubelet's `maxRespBodyLength`: how much of the final body is read and dropped.
const MAX_RESP_BODY: u64 = 10 << 10;
/// Go's `maxBodySlurpSize`: how much of a followed redirect's body is read and dropped.
const MAX_REDIRECT_BODY: u64 = 2 << 10;
/// Go's default redirect policy: at most 10 requests in a chain.
const MAX_REQUESTS: usize = 10;

/// Shared HTTP client state: the rustls config (built once; cheap to clone).
#[derive(Clone, Debug)]
pub struct HttpClient {
    tls: Arc<rustls::ClientConfig>,
}

impl Default for HttpClient {
    fn default() -> Self {
        HttpClient::new()
    }
}

impl HttpClient {
    pub fn new() -> Self {
        HttpClient {
            tls: tls::client_config(),
        }
    }
}

pub async fn run(client: &HttpClient, action: &HTTPGetAction, ctx: &HookContext) -> HookOutcome {
    let started = Instant::now();
    let fail = |err: String| {
        HookOutcome::failed(
            started,
            format!(
                "HTTP lifecycle hook ({}) for Container {} in Pod {} failed - error: {err}",
                action.path.as_deref().unwrap_or(""),
                go_quote(ctx.target.container.as_bytes()),
                go_quote(ctx.target.pod.to_string().as_bytes()),
            ),
        )
    };
    let got = get(
        client,
        action,
        &ctx.target,
        Caller::Lifecycle,
        ctx.settings.timeout,
        &ctx.cancel,
    )
    .await;
    let got = match got {
        Ok(got) => got,
        Err(e) => return fail(e.into_text()),
    };
    let mut outcome = match ctx.settings.http_status {
        HttpStatusMode::Strict if !(200..400).contains(&got.status.as_u16()) => fail(format!(
            "HTTP probe failed with statuscode: {}",
            got.status.as_u16()
        )),
        _ => HookOutcome::ok(started),
    };
    if let Some(authority) = got.fell_back {
        outcome.events.push(Event::new(
            EventType::Warning,
            reason::LIFECYCLE_HTTP_FALLBACK,
            &ctx.target.pod.name,
            None,
            format!(
                "request to HTTPS lifecycle hook {authority} got HTTP response, retry with HTTP succeeded"
            ),
        ));
    }
    outcome
}

/// The final response of [`get`].
#[derive(Debug)]
pub struct Got {
    pub status: StatusCode,
    /// The body read ([`Caller::Prober`]: at most 10 KiB; [`Caller::Lifecycle`]: empty).
    pub body: Vec<u8>,
    /// Reading the kept body failed: Go's bare error text (no `Get "<url>": `).
    pub body_error: Option<String>,
    /// The HTTPS→HTTP fallback answered: the original URL's `host:port`.
    pub fell_back: Option<String>,
}

/// Why [`get`] has no response.
#[derive(Debug, PartialEq, Eq)]
pub enum GetError {
    /// The request could not be made (`NewRequestForHTTPGetAction` failed: a bad port);
    /// the prober's `Unknown`.
    Request(String),
    /// The client failed: `Get "<url>": <cause>` (or, reading the body, the bare cause).
    Transport(String),
    /// `cancel` fired: `Get "<url>": context canceled`.
    Canceled(String),
}

impl GetError {
    pub fn into_text(self) -> String {
        match self {
            GetError::Request(t) | GetError::Transport(t) | GetError::Canceled(t) => t,
        }
    }
}

/// One httpGet request as `caller` makes it (see the module doc), to `target`, ended at
/// `timeout` or `cancel` with Go's `http.Client.Timeout` texts.
pub async fn get(
    client: &HttpClient,
    action: &HTTPGetAction,
    target: &HookTarget,
    caller: Caller,
    timeout: Duration,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<Got, GetError> {
    let spec = Spec::new(action, target, caller)?;
    let deadline = deadline(timeout);
    let mut progress = Progress::new(&spec.url);
    progress.netns = target.netns.clone();
    let stop = {
        let work = client.execute(&spec, &mut progress);
        tokio::select! {
            biased;
            _ = cancel.cancelled() => Stop::Canceled,
            r = work => Stop::Done(r),
            _ = tokio::time::sleep_until(deadline) => Stop::Timeout,
        }
    };
    match stop {
        Stop::Done(Ok((mut got, fell_back))) => {
            got.fell_back = fell_back.then(|| spec.url.authority());
            Ok(got)
        }
        Stop::Done(Err(e)) => Err(GetError::Transport(e)),
        // During the fallback retry, a stop is a failed retry: the original error stands.
        Stop::Timeout => Err(GetError::Transport(
            progress.original.take().unwrap_or_else(|| {
                match (progress.phase, spec.caller.final_body()) {
                    // The prober reads the body after `Do` returned: Go's bare read error.
                    (Phase::Body, BodyRead::Keep(_)) => progress.timeout_text(),
                    _ => format!(
                        "Get {}: {}",
                        go_quote(progress.url.as_bytes()),
                        progress.timeout_text()
                    ),
                }
            }),
        )),
        Stop::Canceled => Err(GetError::Canceled(progress.original.take().unwrap_or_else(
            || {
                format!(
                    "Get {}: context canceled",
                    go_quote(progress.url.as_bytes())
                )
            },
        ))),
    }
}

/// `now + timeout`, saturating far in the future.
pub(crate) fn deadline(timeout: Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400))
}

enum Stop {
    Done(Result<(Got, bool), String>),
    Timeout,
    Canceled,
}

/// What the request in flight is doing, for the message when the deadline or cancellation
/// abandons it.
struct Progress {
    url: String,
    phase: Phase,
    addr: Option<SocketAddr>,
    /// The pod's network namespace to dial from (`HookTarget::netns`).
    netns: Option<std::path::PathBuf>,
    /// The HTTPS error while its HTTP fallback runs.
    original: Option<String>,
}

#[derive(Clone, Copy)]
enum Phase {
    Dial,
    Headers,
    Body,
}

impl Progress {
    fn new(url: &Url) -> Self {
        Progress {
            url: url.to_string(),
            phase: Phase::Dial,
            addr: None,
            netns: None,
            original: None,
        }
    }

    /// Go's texts for an `http.Client.Timeout` firing in each phase.
    fn timeout_text(&self) -> String {
        const HEADERS: &str = "(Client.Timeout exceeded while awaiting headers)";
        match (self.phase, self.addr) {
            (Phase::Dial, Some(addr)) => format!("dial tcp {addr}: i/o timeout {HEADERS}"),
            (Phase::Dial, None) | (Phase::Headers, _) => {
                format!("context deadline exceeded {HEADERS}")
            }
            (Phase::Body, _) => "context deadline exceeded (Client.Timeout or context \
                                 cancellation while reading body)"
                .to_owned(),
        }
    }
}

/// A failed request: the cause (without the `Get "<url>": ` prefix).
struct Fail {
    text: String,
    /// Go's `server gave HTTP response to HTTPS client`: triggers the fallback.
    http_response: bool,
}

impl Fail {
    fn new(text: impl Into<String>) -> Self {
        Fail {
            text: text.into(),
            http_response: false,
        }
    }
}

fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

impl HttpClient {
    /// The request, then (lifecycle only) the fallback if the server answered HTTPS in HTTP.
    /// `Ok` carries the final response and whether the fallback was used; `Err` the complete
    /// error text.
    async fn execute(&self, spec: &Spec, progress: &mut Progress) -> Result<(Got, bool), String> {
        match self.follow(spec, progress).await {
            Ok(got) => Ok((got, false)),
            Err(fail) => {
                let original = format!("Get {}: {}", go_quote(progress.url.as_bytes()), fail.text);
                if !fail.http_response || !spec.caller.http_fallback() {
                    return Err(original);
                }
                progress.original = Some(original.clone());
                match self.follow(&spec.http_retry(), progress).await {
                    Ok(got) => Ok((got, true)),
                    Err(_) => Err(original),
                }
            }
        }
    }

    /// One request and its same-host redirects (Go's `Client.Do` with the kubelet's
    /// `RedirectChecker(false)`). `progress.url` names the URL of an error.
    async fn follow(&self, spec: &Spec, progress: &mut Progress) -> Result<Got, Fail> {
        let mut url = spec.url.clone();
        let mut host_override = spec.host.clone();
        let mut referer: Option<String> = None;
        let mut requests = 0;
        loop {
            progress.url = url.to_string();
            let host = host_override.clone().unwrap_or_else(|| url.authority());
            let req = spec.request(&url, &host, referer.as_deref())?;
            requests += 1;
            let same_host = |loc: &str| {
                url.resolve(loc)
                    .is_ok_and(|(next, _)| next.host == spec.url.host)
            };
            let body_read = |status: StatusCode, loc: Option<&str>| match loc {
                Some(loc) if is_redirect(status) && !loc.is_empty() && same_host(loc) => {
                    BodyRead::Drain(MAX_REDIRECT_BODY)
                }
                _ => spec.caller.final_body(),
            };
            let (got, location) = self.round_trip(&url, req, progress, body_read).await?;
            if !is_redirect(got.status) {
                return Ok(got);
            }
            let Some(loc) = location.filter(|l| !l.is_empty()) else {
                return Ok(got);
            };
            let (next, absolute) = url.resolve(&loc).map_err(|e| {
                Fail::new(format!(
                    "failed to parse Location header {}: {e}",
                    go_quote(loc.as_bytes())
                ))
            })?;
            if next.host != spec.url.host {
                return Ok(got); // http.ErrUseLastResponse: the 3xx is the answer
            }
            if requests >= MAX_REQUESTS {
                progress.url = loc;
                return Err(Fail::new("stopped after 10 redirects"));
            }
            referer = if url.scheme == "https" && next.scheme == "http" {
                None
            } else {
                Some(url.to_string())
            };
            if absolute {
                host_override = None;
            }
            url = next;
        }
    }

    /// One request on a new connection: dial, TLS if https, send, read the head, read the
    /// body as `body_read(status, location)` says, close.
    async fn round_trip(
        &self,
        url: &Url,
        req: Request<Empty<Bytes>>,
        progress: &mut Progress,
        body_read: impl FnOnce(StatusCode, Option<&str>) -> BodyRead,
    ) -> Result<(Got, Option<String>), Fail> {
        let https = match url.scheme.as_str() {
            "http" => false,
            "https" => true,
            other => {
                return Err(Fail::new(format!(
                    "unsupported protocol scheme {}",
                    go_quote(other.as_bytes())
                )))
            }
        };
        progress.phase = Phase::Dial;
        let tcp = dial(
            &url.host,
            url.effective_port(),
            progress.netns.as_deref(),
            &mut progress.addr,
        )
        .await
        .map_err(Fail::new)?;
        let _ = tcp.set_nodelay(true);
        let addrs = (tcp.local_addr().ok(), tcp.peer_addr().ok());
        progress.phase = Phase::Headers;
        if !https {
            return exchange(tcp, req, progress, addrs, body_read).await;
        }
        let name = ServerName::try_from(url.host.clone()).unwrap_or_else(|_| {
            // Not a valid DNS name for SNI: send none, as for an IP literal.
            ServerName::IpAddress(
                addrs
                    .1
                    .map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |a| a.ip())
                    .into(),
            )
        });
        let connect = TlsConnector::from(self.tls.clone())
            .connect(name, tls::FirstBytes::new(tcp))
            .into_fallible();
        match connect.await {
            Ok(stream) => exchange(stream, req, progress, addrs, body_read).await,
            Err((_, io)) if tls::answered_in_http(&io) => Err(Fail {
                text: "http: server gave HTTP response to HTTPS client".to_owned(),
                http_response: true,
            }),
            Err((e, _)) => Err(Fail::new(tls::handshake_error_text(&e))),
        }
    }
}

async fn exchange<S>(
    io: S,
    req: Request<Empty<Bytes>>,
    progress: &mut Progress,
    addrs: (Option<SocketAddr>, Option<SocketAddr>),
    body_read: impl FnOnce(StatusCode, Option<&str>) -> BodyRead,
) -> Result<(Got, Option<String>), Fail>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .title_case_headers(true)
        .handshake::<_, Empty<Bytes>>(TokioIo::new(io))
        .await
        .map_err(|e| Fail::new(hyper_error_text(&e, addrs)))?;
    // The connection is driven here rather than spawned, so abandoning the hook (deadline,
    // cancellation) drops the socket at once.
    tokio::pin!(conn);
    let mut conn_done = false;
    let resp = driven(conn.as_mut(), &mut conn_done, sender.send_request(req))
        .await
        .map_err(|e| Fail::new(hyper_error_text(&e, addrs)))?;
    let status = resp.status();
    let location = resp
        .headers()
        .get(LOCATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let mut got = Got {
        status,
        body: Vec::new(),
        body_error: None,
        fell_back: None,
    };
    let mut body = resp.into_body();
    let (limit, keep) = match body_read(status, location.as_deref()) {
        // Go: `if resp.ContentLength <= limit` (-1, unknown, included).
        BodyRead::Drain(n) if body.size_hint().exact().is_none_or(|len| len <= n) => (n, false),
        BodyRead::Drain(_) => (0, false),
        BodyRead::Keep(n) => (n, true),
    };
    if limit > 0 {
        progress.phase = Phase::Body;
    }
    let mut read = 0u64;
    while read < limit {
        match driven(conn.as_mut(), &mut conn_done, body.frame()).await {
            Some(Ok(frame)) => {
                let data = frame.data_ref().map_or(&[][..], |d| &d[..]);
                if keep {
                    let room = usize::try_from(limit - read).unwrap_or(usize::MAX);
                    got.body.extend_from_slice(&data[..data.len().min(room)]);
                }
                read += data.len() as u64;
            }
            // A drain ignores read errors (the kubelet does too); a kept body reports them.
            Some(Err(e)) if keep => {
                got.body_error = Some(body_error_text(&e, addrs));
                break;
            }
            _ => break,
        }
    }
    // The connection is closed when it is dropped, right after.
    Ok((got, location))
}

/// Await `fut` while driving the connection `conn` (which has to make progress for `fut` to).
async fn driven<C: Future, F: Future>(
    mut conn: Pin<&mut C>,
    conn_done: &mut bool,
    fut: F,
) -> F::Output {
    tokio::pin!(fut);
    loop {
        tokio::select! {
            biased;
            out = &mut fut => return out,
            _ = conn.as_mut(), if !*conn_done => *conn_done = true,
        }
    }
}

/// Go-shaped text of a hyper error: `EOF` when the server closed before answering,
/// `read tcp L->R: read: <errno>` for socket errors, the transport's malformed-response text.
fn hyper_error_text(err: &hyper::Error, addrs: (Option<SocketAddr>, Option<SocketAddr>)) -> String {
    if err.is_incomplete_message() {
        return "EOF".to_owned();
    }
    if err.is_parse() || err.is_parse_status() {
        return "net/http: HTTP/1.x transport connection broken: malformed HTTP response"
            .to_owned();
    }
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return match addrs {
                (Some(l), Some(r)) if io.raw_os_error().is_some() => {
                    format!("read tcp {l}->{r}: read: {}", errno_text(io))
                }
                _ => io_error_text(io),
            };
        }
        source = e.source();
    }
    err.to_string()
}

/// Go-shaped text of an error reading a body: `unexpected EOF` when it ended before its
/// length, else as [`hyper_error_text`].
fn body_error_text(err: &hyper::Error, addrs: (Option<SocketAddr>, Option<SocketAddr>)) -> String {
    if err.is_incomplete_message() {
        return "unexpected EOF".to_owned();
    }
    hyper_error_text(err, addrs)
}

/// Go's text of a socket error: `EOF` for a closed stream, else the errno text.
fn io_error_text(err: &io::Error) -> String {
    if err.kind() == io::ErrorKind::UnexpectedEof {
        "EOF".to_owned()
    } else {
        errno_text(err)
    }
}
