//! A small blocking HTTP client for hooks, over `wasi:http` 0.2 (feature `http`).
//!
//! ```no_run
//! use std::time::Duration;
//! use hooks_sdk::{http, info, HookError};
//!
//! fn notify() -> Result<(), HookError> {
//!     let r = http::Request::post("http://127.0.0.1:8080/drain")
//!         .header("content-type", "text/plain")
//!         .body("draining\n")
//!         .timeout(Duration::from_secs(5))
//!         .send()?;
//!     info!("drain endpoint answered {}: {}", r.status(), r.text().trim());
//!     Ok(())
//! }
//! ```
//!
//! # Where it works
//!
//! Requests go through `wasi:http/outgoing-handler@0.2.12`, which only a **component** can
//! import: build the hook for `wasm32-wasip1` as usual, then wrap it with the WASI preview 1
//! *command* adapter (`wasm-tools component new hook.wasm --adapt
//! wasi_snapshot_preview1=wasi_snapshot_preview1.command.wasm`, as `scripts/build-hooks.sh`
//! does). The plain p1 module cannot be instantiated: its `wasi:http` imports have no p1 host.
//! The host must link `wasi:http`, and the pod's `wasmhook.dev/hook-network` annotation must
//! allow the destination (`deny` by default; `pod`, `allow`, or an allow-list of
//! `HOST[:PORT]`/`CIDR[:PORT]`). A refused destination fails with the error code
//! `destination-ip-prohibited` (or `http-request-denied`), see [`HttpError::code`]. In a native
//! build (the crate's unit tests), [`Request::send`] always fails: there is no `wasi:http`.
//!
//! # Invariants
//!
//! - **One request, one exchange.** Every [`Request::send`] is exactly one
//!   `outgoing-handler.handle` call, so the host checks the destination of every connection.
//!   Nothing is pooled or retried here.
//! - **Redirects are not followed.** A `3xx` is returned as a [`Response`] like any other
//!   status; to follow it, read [`Response::header`]`("location")` and send a new request (which
//!   the host checks again).
//! - **Bounded in time.** [`Request::timeout`] (default [`DEFAULT_TIMEOUT`]) bounds the whole
//!   exchange: connect, sending the body, the response head and reading the body. It is passed to
//!   the host as the `request-options` connect, first-byte and between-bytes timeouts, and the
//!   client also waits on a monotonic-clock deadline of its own in every `poll`, so it returns
//!   [`HttpErrorKind::Timeout`] even if the host ignores the options. Keep it below the hook's
//!   own timeout (and a preStop hook's grace period) so the hook can fail with a clear message.
//! - **Bounded in size.** The response body is read fully into memory, up to
//!   [`Request::max_body`] bytes (default [`DEFAULT_MAX_BODY`]); a longer body is an error
//!   ([`HttpErrorKind::BodyTooLarge`]), never silently cut.
//! - **Bodies are sized.** A request with body bytes, and any `POST`/`PUT`/`PATCH`, gets a
//!   `content-length` header unless one is given, so servers that do not take chunked request
//!   bodies (CGI) work. Other requests without bytes (`GET`, `DELETE`) send no body at all.
//! - **URLs** are `http://` or `https://` + `host[:port]` (IPv6 in brackets) + optional path and
//!   query; a fragment is dropped; user info (`user@host`) is refused (send an `authorization`
//!   header). Paths are sent as written: percent-encode them yourself.
//! - **Errors** ([`HttpError`]) name the method, the URL and, for failures the host reports,
//!   the `wasi:http` `error-code` case (`connection-refused`, `destination-ip-prohibited`,
//!   `dns-error`, ...). They convert into [`HookError`], so `?` works in a hook.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use crate::HookError;

/// The default bound of a whole request: 10 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The default cap on a response body: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;

/// `GET url` with the default timeout and body cap.
pub fn get(url: &str) -> Result<Response, HttpError> {
    Request::get(url).send()
}

/// `POST url` with this body (no `content-type`: add one with [`Request::header`]).
pub fn post(url: &str, body: impl Into<Vec<u8>>) -> Result<Response, HttpError> {
    Request::post(url).body(body).send()
}

/// `PUT url` with this body (no `content-type`: add one with [`Request::header`]).
pub fn put(url: &str, body: impl Into<Vec<u8>>) -> Result<Response, HttpError> {
    Request::put(url).body(body).send()
}

/// An HTTP request, built step by step and sent with [`Request::send`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    timeout: Duration,
    max_body: usize,
}

impl Request {
    /// A request with any method (`"DELETE"`, `"PATCH"`, ...; upper-cased), no headers, an empty
    /// body, [`DEFAULT_TIMEOUT`] and [`DEFAULT_MAX_BODY`]. The URL is checked by `send`.
    pub fn new(method: &str, url: impl Into<String>) -> Self {
        Request {
            method: method.to_ascii_uppercase(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            max_body: DEFAULT_MAX_BODY,
        }
    }

    /// A `GET` request.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }

    /// A `POST` request (empty body unless [`Request::body`] sets one).
    pub fn post(url: impl Into<String>) -> Self {
        Self::new("POST", url)
    }

    /// A `PUT` request (empty body unless [`Request::body`] sets one).
    pub fn put(url: impl Into<String>) -> Self {
        Self::new("PUT", url)
    }

    /// Adds a header (appended: repeating a name sends it several times). The host refuses
    /// some names (`host`, `connection`, `transfer-encoding`, ...): `send` fails then.
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.as_ref().to_vec()));
        self
    }

    /// Sets the request body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Bounds the whole exchange (see the module's invariants).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Caps the response body at `bytes`.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// The method, upper-case.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The URL as given.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends the request through `wasi:http/outgoing-handler` and waits, at most the timeout,
    /// for the response and its whole body. Any status, `3xx` included, is `Ok`.
    pub fn send(&self) -> Result<Response, HttpError> {
        let fail = |kind| HttpError {
            method: self.method.clone(),
            url: self.url.clone(),
            kind,
        };
        let url = Url::parse(&self.url).map_err(|m| fail(HttpErrorKind::InvalidUrl(m)))?;
        if cfg!(target_arch = "wasm32") {
            transport::send(self, &url).map_err(fail)
        } else {
            Err(fail(HttpErrorKind::Other(
                "wasi:http is only available to a hook running as a wasm component".into(),
            )))
        }
    }

    /// Whether the request has a body, possibly empty: bytes, a method that takes one, or a
    /// `content-length` from the caller. Otherwise no body is sent at all (not even an empty
    /// chunked one).
    fn has_body(&self) -> bool {
        !self.body.is_empty()
            || matches!(&*self.method, "POST" | "PUT" | "PATCH")
            || self.headers.iter().any(|(n, _)| n == "content-length")
    }

    /// The `content-length` to add: the body's, if it has one and the caller did not set it.
    fn content_length(&self) -> Option<usize> {
        let given = self.headers.iter().any(|(n, _)| n == "content-length");
        (self.has_body() && !given).then_some(self.body.len())
    }
}

/// A complete response: status, headers and the whole body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Response {
    /// The status code (`200`, `503`, ...).
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Whether the status is `2xx`.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first value of a header (name case-insensitive), if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// All headers in the order received, names lower-case as the host gives them.
    pub fn headers(&self) -> &[(String, Vec<u8>)] {
        &self.headers
    }

    /// The body bytes.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body as text (invalid UTF-8 replaced by U+FFFD).
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// The body, consuming the response.
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }
}

/// Why a request failed: the method, the URL and an [`HttpErrorKind`].
///
/// Displays as `<METHOD> <url>: <what>`, e.g. `POST http://127.0.0.1:9/drain: wasi:http
/// error-code connection-refused`, and converts into a [`HookError`] with that message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    method: String,
    url: String,
    kind: HttpErrorKind,
}

/// What went wrong in an [`HttpError`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpErrorKind {
    /// The URL could not be parsed, or the host refused one of its parts.
    InvalidUrl(String),
    /// The host reported a `wasi:http` `error-code`: `code` is the case name in lower case
    /// (`connection-refused`, `destination-ip-prohibited`, `dns-error`, `connection-timeout`,
    /// `http-response-timeout`, ...), `detail` its payload when it has one.
    Wasi {
        /// The `error-code` case, lower-case kebab (`http-request-uri-invalid`).
        code: String,
        /// The case's payload, if any (a DNS rcode, an internal error's text, ...).
        detail: Option<String>,
    },
    /// The client's own deadline passed (the request's timeout) before the exchange completed.
    Timeout(Duration),
    /// The response body was longer than the cap.
    BodyTooLarge(usize),
    /// Anything else: a header or method the host refused, a stream error without a code.
    Other(String),
}

impl HttpError {
    /// The request's method.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The request's URL as given.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// What went wrong.
    pub fn kind(&self) -> &HttpErrorKind {
        &self.kind
    }

    /// The `wasi:http` `error-code` case (`connection-refused`, ...) if the host reported one.
    pub fn code(&self) -> Option<&str> {
        match &self.kind {
            HttpErrorKind::Wasi { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether the request ran out of time: the client's deadline, or a host-side timeout
    /// (`connection-timeout`, `connection-read-timeout`, `connection-write-timeout`,
    /// `http-response-timeout`, `dns-timeout`).
    pub fn is_timeout(&self) -> bool {
        match &self.kind {
            HttpErrorKind::Timeout(_) => true,
            HttpErrorKind::Wasi { code, .. } => matches!(
                &**code,
                "connection-timeout"
                    | "connection-read-timeout"
                    | "connection-write-timeout"
                    | "http-response-timeout"
                    | "dns-timeout"
            ),
            _ => false,
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: ", self.method, self.url)?;
        match &self.kind {
            HttpErrorKind::InvalidUrl(why) => write!(f, "invalid URL: {why}"),
            HttpErrorKind::Wasi { code, detail } => {
                write!(f, "wasi:http error-code {code}")?;
                if let Some(d) = detail {
                    write!(f, " ({d})")?;
                }
                if matches!(&**code, "destination-ip-prohibited" | "http-request-denied") {
                    f.write_str(": not allowed by the pod's wasmhook.dev/hook-network policy")?;
                }
                Ok(())
            }
            HttpErrorKind::Timeout(t) => write!(f, "no complete response within {t:?}"),
            HttpErrorKind::BodyTooLarge(n) => write!(f, "response body larger than {n} bytes"),
            HttpErrorKind::Other(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for HttpError {}

impl From<HttpError> for HookError {
    fn from(e: HttpError) -> Self {
        HookError::new(e.to_string())
    }
}

/// A URL split the way `wasi:http` wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Url {
    https: bool,
    authority: String,
    path_with_query: String,
}

impl Url {
    fn parse(url: &str) -> Result<Url, String> {
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("contains whitespace or control characters".into());
        }
        let (scheme, rest) = url
            .split_once("://")
            .ok_or("expected http://HOST[:PORT][/PATH]")?;
        let https = match &*scheme.to_ascii_lowercase() {
            "http" => false,
            "https" => true,
            other => return Err(format!("unsupported scheme {other:?} (http or https)")),
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let (authority, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        if authority.contains('@') {
            return Err("user info is not supported (send an authorization header)".into());
        }
        let (host, port) = match authority.rfind(':') {
            Some(i) if !authority[i..].contains(']') => {
                (&authority[..i], Some(&authority[i + 1..]))
            }
            _ => (authority, None),
        };
        if host.is_empty() || host == "[]" {
            return Err("no host".into());
        }
        if host.starts_with('[') != host.ends_with(']') {
            return Err("unbalanced brackets around an IPv6 address".into());
        }
        if let Some(p) = port {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.parse::<u16>().is_err() {
                return Err(format!("invalid port {p:?}"));
            }
        }
        let path_with_query = match path.chars().next() {
            None => "/".to_string(),
            Some('?') => format!("/{path}"),
            Some(_) => path.to_string(),
        };
        Ok(Url {
            https,
            authority: authority.to_string(),
            path_with_query,
        })
    }
}

/// The `wasi:http` side. Compiled on every target (so it is linted and type-checked natively),
/// called only on `wasm32`: natively the bindings' imports are stubs that panic.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod transport {
    use super::{HttpErrorKind, Request, Response, Url};
    use wasip2::clocks::monotonic_clock;
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{
        ErrorCode, Fields, HeaderError, Method, OutgoingBody, OutgoingRequest, RequestOptions,
        Scheme,
    };
    use wasip2::io::error::Error as IoError;
    use wasip2::io::poll::{poll, Pollable};
    use wasip2::io::streams::{OutputStream, StreamError};

    /// The most read or written per stream call.
    const CHUNK: u64 = 64 * 1024;

    /// One exchange. Resources are declared parent first, so they drop child first, as the
    /// host requires (a pollable before its stream, a stream before its body).
    pub(super) fn send(req: &Request, url: &Url) -> Result<Response, HttpErrorKind> {
        let timeout_ns = u64::try_from(req.timeout.as_nanos()).unwrap_or(u64::MAX);
        let deadline = monotonic_clock::subscribe_duration(timeout_ns);

        let headers = Fields::new();
        for (name, value) in &req.headers {
            headers
                .append(name, value)
                .map_err(|e| header_error(name, e))?;
        }
        if let Some(len) = req.content_length() {
            headers
                .append("content-length", len.to_string().as_bytes())
                .map_err(|e| header_error("content-length", e))?;
        }
        let request = OutgoingRequest::new(headers);
        let method = match &*req.method {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "OPTIONS" => Method::Options,
            other => Method::Other(other.to_string()),
        };
        let refused = |what: &str| HttpErrorKind::InvalidUrl(format!("the host refused {what}"));
        request.set_method(&method).map_err(|()| {
            HttpErrorKind::Other(format!("the host refused method {}", req.method))
        })?;
        let scheme = if url.https {
            Scheme::Https
        } else {
            Scheme::Http
        };
        request
            .set_scheme(Some(&scheme))
            .map_err(|()| refused("the scheme"))?;
        request
            .set_authority(Some(&url.authority))
            .map_err(|()| refused(&format!("the authority {:?}", url.authority)))?;
        request
            .set_path_with_query(Some(&url.path_with_query))
            .map_err(|()| refused(&format!("the path {:?}", url.path_with_query)))?;

        // Hosts may not support every option: the deadline above still bounds the wait.
        let options = RequestOptions::new();
        let _ = options.set_connect_timeout(Some(timeout_ns));
        let _ = options.set_first_byte_timeout(Some(timeout_ns));
        let _ = options.set_between_bytes_timeout(Some(timeout_ns));

        // A request without a body never takes its body resource: the host sends none.
        let body = if req.has_body() {
            let body = request
                .body()
                .map_err(|()| HttpErrorKind::Other("request body unavailable".into()))?;
            Some(body)
        } else {
            None
        };
        let future = outgoing_handler::handle(request, Some(options)).map_err(wasi)?;
        if let Some(body) = body {
            // A server may answer (and hang up) before it takes the whole body: then the
            // response, or the error the host reports for the exchange, is what counts.
            let written = write_body(&body, &req.body, &deadline, req);
            if let Err(e @ HttpErrorKind::Timeout(_)) = written {
                return Err(e);
            }
            let _ = OutgoingBody::finish(body, None);
        }

        let response = loop {
            if let Some(r) = future.get() {
                break r
                    .map_err(|()| HttpErrorKind::Other("response already taken".into()))?
                    .map_err(wasi)?;
            }
            wait(&future.subscribe(), &deadline, req)?;
        };
        let status = response.status();
        let headers = response.headers().entries();

        let incoming = response
            .consume()
            .map_err(|()| HttpErrorKind::Other("response body unavailable".into()))?;
        let stream = incoming
            .stream()
            .map_err(|()| HttpErrorKind::Other("response body stream unavailable".into()))?;
        let mut body = Vec::new();
        loop {
            if deadline.ready() {
                return Err(HttpErrorKind::Timeout(req.timeout));
            }
            match stream.read(CHUNK) {
                Ok(chunk) if chunk.is_empty() => wait(&stream.subscribe(), &deadline, req)?,
                Ok(chunk) => {
                    if body.len().saturating_add(chunk.len()) > req.max_body {
                        return Err(HttpErrorKind::BodyTooLarge(req.max_body));
                    }
                    body.extend_from_slice(&chunk);
                }
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => return Err(stream_error(&e)),
            }
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// Writes all of `data` into the request body and flushes it, within the deadline.
    /// `Timeout` when the deadline passes; another error if the stream fails or closes early.
    fn write_body(
        body: &OutgoingBody,
        data: &[u8],
        deadline: &Pollable,
        req: &Request,
    ) -> Result<(), HttpErrorKind> {
        if data.is_empty() {
            return Ok(());
        }
        let out: OutputStream = body
            .write()
            .map_err(|()| HttpErrorKind::Other("request body stream unavailable".into()))?;
        let mut rest = data;
        while !rest.is_empty() {
            let n = out.check_write().map_err(write_error)?;
            if n == 0 {
                wait(&out.subscribe(), deadline, req)?;
                continue;
            }
            let k = rest.len().min(n.min(CHUNK) as usize);
            out.write(&rest[..k]).map_err(write_error)?;
            rest = &rest[k..];
        }
        // Every byte is written. The host may close the stream as soon as it has taken
        // `content-length` bytes, so `closed` from here on means done.
        match out.flush() {
            Err(StreamError::Closed) => return Ok(()),
            r => r.map_err(write_error)?,
        }
        loop {
            match out.check_write() {
                Ok(0) => wait(&out.subscribe(), deadline, req)?,
                Ok(_) | Err(StreamError::Closed) => return Ok(()),
                Err(e) => return Err(write_error(e)),
            }
        }
    }

    /// Blocks until `p` is ready; `Timeout` if the deadline comes first.
    fn wait(p: &Pollable, deadline: &Pollable, req: &Request) -> Result<(), HttpErrorKind> {
        if poll(&[p, deadline]).contains(&0) {
            Ok(())
        } else {
            Err(HttpErrorKind::Timeout(req.timeout))
        }
    }

    fn write_error(e: StreamError) -> HttpErrorKind {
        match e {
            StreamError::Closed => HttpErrorKind::Other("the request body stream closed".into()),
            StreamError::LastOperationFailed(e) => stream_error(&e),
        }
    }

    fn stream_error(e: &IoError) -> HttpErrorKind {
        match wasip2::http::types::http_error_code(e) {
            Some(code) => wasi(code),
            None => HttpErrorKind::Other(format!("stream error: {}", e.to_debug_string())),
        }
    }

    fn header_error(name: &str, e: HeaderError) -> HttpErrorKind {
        let why = match e {
            HeaderError::InvalidSyntax => "invalid syntax",
            HeaderError::Forbidden => "forbidden",
            HeaderError::Immutable => "immutable",
        };
        HttpErrorKind::Other(format!("header {name:?} refused by the host: {why}"))
    }

    /// A `wasi:http` error-code as its case name (lower-case kebab) and payload.
    pub(super) fn wasi(code: ErrorCode) -> HttpErrorKind {
        let some = |s: String| Some(s).filter(|s| !s.is_empty());
        let field = |p: &wasip2::http::types::FieldSizePayload| {
            some(
                [
                    p.field_name.clone(),
                    p.field_size.map(|n| format!("{n} bytes")),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": "),
            )
        };
        use ErrorCode as E;
        let (code, detail) = match code {
            E::DnsTimeout => ("dns-timeout", None),
            E::DnsError(p) => (
                "dns-error",
                some(
                    [p.rcode, p.info_code.map(|c| format!("info-code {c}"))]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
            ),
            E::DestinationNotFound => ("destination-not-found", None),
            E::DestinationUnavailable => ("destination-unavailable", None),
            E::DestinationIpProhibited => ("destination-ip-prohibited", None),
            E::DestinationIpUnroutable => ("destination-ip-unroutable", None),
            E::ConnectionRefused => ("connection-refused", None),
            E::ConnectionTerminated => ("connection-terminated", None),
            E::ConnectionTimeout => ("connection-timeout", None),
            E::ConnectionReadTimeout => ("connection-read-timeout", None),
            E::ConnectionWriteTimeout => ("connection-write-timeout", None),
            E::ConnectionLimitReached => ("connection-limit-reached", None),
            E::TlsProtocolError => ("tls-protocol-error", None),
            E::TlsCertificateError => ("tls-certificate-error", None),
            E::TlsAlertReceived(p) => (
                "tls-alert-received",
                some(
                    [p.alert_id.map(|i| format!("alert {i}")), p.alert_message]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(": "),
                ),
            ),
            E::HttpRequestDenied => ("http-request-denied", None),
            E::HttpRequestLengthRequired => ("http-request-length-required", None),
            E::HttpRequestBodySize(n) => ("http-request-body-size", n.map(|n| format!("{n}"))),
            E::HttpRequestMethodInvalid => ("http-request-method-invalid", None),
            E::HttpRequestUriInvalid => ("http-request-uri-invalid", None),
            E::HttpRequestUriTooLong => ("http-request-uri-too-long", None),
            E::HttpRequestHeaderSectionSize(n) => (
                "http-request-header-section-size",
                n.map(|n| format!("{n}")),
            ),
            E::HttpRequestHeaderSize(p) => ("http-request-header-size", p.as_ref().and_then(field)),
            E::HttpRequestTrailerSectionSize(n) => (
                "http-request-trailer-section-size",
                n.map(|n| format!("{n}")),
            ),
            E::HttpRequestTrailerSize(p) => ("http-request-trailer-size", field(&p)),
            E::HttpResponseIncomplete => ("http-response-incomplete", None),
            E::HttpResponseHeaderSectionSize(n) => (
                "http-response-header-section-size",
                n.map(|n| format!("{n}")),
            ),
            E::HttpResponseHeaderSize(p) => ("http-response-header-size", field(&p)),
            E::HttpResponseBodySize(n) => ("http-response-body-size", n.map(|n| format!("{n}"))),
            E::HttpResponseTrailerSectionSize(n) => (
                "http-response-trailer-section-size",
                n.map(|n| format!("{n}")),
            ),
            E::HttpResponseTrailerSize(p) => ("http-response-trailer-size", field(&p)),
            E::HttpResponseTransferCoding(s) => ("http-response-transfer-coding", s),
            E::HttpResponseContentCoding(s) => ("http-response-content-coding", s),
            E::HttpResponseTimeout => ("http-response-timeout", None),
            E::HttpUpgradeFailed => ("http-upgrade-failed", None),
            E::HttpProtocolError => ("http-protocol-error", None),
            E::LoopDetected => ("loop-detected", None),
            E::ConfigurationError => ("configuration-error", None),
            E::InternalError(s) => ("internal-error", s),
        };
        HttpErrorKind::Wasi {
            code: code.to_string(),
            detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn urls_split_into_scheme_authority_and_path() {
        let u = url("http://127.0.0.1:8080/cgi-bin/drain?x=1#frag");
        assert!(!u.https);
        assert_eq!(u.authority, "127.0.0.1:8080");
        assert_eq!(u.path_with_query, "/cgi-bin/drain?x=1");
        let u = url("HTTPS://example.com");
        assert!(u.https);
        assert_eq!((&*u.authority, &*u.path_with_query), ("example.com", "/"));
        assert_eq!(url("http://h?q=1").path_with_query, "/?q=1");
        assert_eq!(url("http://[::1]:80/x").authority, "[::1]:80");
        assert_eq!(url("http://[fe80::1]/").authority, "[fe80::1]");
    }

    #[test]
    fn bad_urls_are_refused_with_a_reason() {
        for (bad, why) in [
            ("127.0.0.1:8080/x", "expected http://"),
            ("ftp://h/", "unsupported scheme"),
            ("http:///x", "no host"),
            ("http://:80/", "no host"),
            ("http://h:/", "invalid port"),
            ("http://h:99999/", "invalid port"),
            ("http://h:8o/", "invalid port"),
            ("http://u:p@h/", "user info"),
            ("http://[::1/", "unbalanced"),
            ("http://h/a b", "whitespace"),
        ] {
            let e = Url::parse(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn builder_sets_everything_and_sizes_bodies() {
        let r = Request::new("patch", "http://h/")
            .header("X-Token", "t")
            .body("abc")
            .timeout(Duration::from_millis(1500))
            .max_body(10);
        assert_eq!(r.method(), "PATCH");
        assert_eq!(r.url(), "http://h/");
        assert_eq!(r.headers, vec![("x-token".to_string(), b"t".to_vec())]);
        assert_eq!((r.timeout, r.max_body), (Duration::from_millis(1500), 10));
        assert_eq!(r.content_length(), Some(3));
        assert_eq!(Request::post("http://h/").content_length(), Some(0));
        assert_eq!(Request::get("http://h/").content_length(), None);
        assert!(!Request::new("DELETE", "http://h/").has_body());
        assert!(Request::new("DELETE", "http://h/").body("x").has_body());
        let given = Request::put("http://h/").header("Content-Length", "0");
        assert_eq!(given.content_length(), None);
        assert_eq!(Request::get("http://h/").timeout, DEFAULT_TIMEOUT);
        assert_eq!(Request::get("http://h/").max_body, DEFAULT_MAX_BODY);
    }

    #[test]
    fn responses_expose_status_headers_and_body() {
        let r = Response {
            status: 204,
            headers: vec![
                ("location".into(), b"/next".to_vec()),
                ("x-bin".into(), vec![0xff]),
            ],
            body: b"ok\n".to_vec(),
        };
        assert!(r.is_success());
        assert_eq!(r.header("Location"), Some("/next"));
        assert_eq!(r.header("x-bin"), None);
        assert_eq!(r.header("missing"), None);
        assert_eq!(r.text(), "ok\n");
        assert_eq!(r.headers().len(), 2);
        assert_eq!(r.into_body(), b"ok\n");
        assert!(!Response {
            status: 302,
            headers: vec![],
            body: vec![]
        }
        .is_success());
    }

    fn err(kind: HttpErrorKind) -> HttpError {
        HttpError {
            method: "POST".into(),
            url: "http://10.0.0.9:8080/drain".into(),
            kind,
        }
    }

    #[test]
    fn errors_name_the_url_and_the_error_code() {
        let e = err(HttpErrorKind::Wasi {
            code: "connection-refused".into(),
            detail: None,
        });
        assert_eq!(
            e.to_string(),
            "POST http://10.0.0.9:8080/drain: wasi:http error-code connection-refused"
        );
        assert_eq!(e.code(), Some("connection-refused"));
        assert!(!e.is_timeout());
        let e = err(HttpErrorKind::Wasi {
            code: "destination-ip-prohibited".into(),
            detail: None,
        });
        assert!(e.to_string().ends_with(
            "error-code destination-ip-prohibited: not allowed by the pod's wasmhook.dev/hook-network policy"
        ));
        let e = err(HttpErrorKind::Wasi {
            code: "dns-error".into(),
            detail: Some("NXDOMAIN".into()),
        });
        assert!(e.to_string().ends_with("error-code dns-error (NXDOMAIN)"));
        let e = err(HttpErrorKind::Timeout(Duration::from_secs(2)));
        assert!(e.is_timeout());
        assert_eq!(e.code(), None);
        let h: HookError = e.into();
        assert_eq!(
            h.message(),
            "POST http://10.0.0.9:8080/drain: no complete response within 2s"
        );
        assert!(err(HttpErrorKind::Wasi {
            code: "http-response-timeout".into(),
            detail: None
        })
        .is_timeout());
    }

    #[test]
    fn native_builds_fail_cleanly() {
        let e = Request::get("nope").send().unwrap_err();
        assert_eq!(
            e.kind(),
            &HttpErrorKind::InvalidUrl("expected http://HOST[:PORT][/PATH]".into())
        );
        assert_eq!(e.method(), "GET");
        assert_eq!(e.url(), "nope");
        if !cfg!(target_arch = "wasm32") {
            let e = get("http://127.0.0.1:9/").unwrap_err();
            assert!(e.to_string().contains("only available"), "{e}");
        }
    }
}
