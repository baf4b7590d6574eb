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

use std::time::Duration;

mod error;
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod transport;
mod url;

pub use error::{HttpError, HttpErrorKind};
use url::Url;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HookError;

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
