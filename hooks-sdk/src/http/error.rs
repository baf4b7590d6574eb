//! Why a request failed.

use std::fmt;
use std::time::Duration;

use crate::HookError;

/// Why a request failed: the method, the URL and an [`HttpErrorKind`].
///
/// Displays as `<METHOD> <url>: <what>`, e.g. `POST http://127.0.0.1:9/drain: wasi:http
/// error-code connection-refused`, and converts into a [`HookError`] with that message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    pub(super) method: String,
    pub(super) url: String,
    pub(super) kind: HttpErrorKind,
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
