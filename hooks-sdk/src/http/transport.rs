//! The `wasi:http` side. Compiled on every target (so it is linted and type-checked natively),
//! called only on `wasm32`: natively the bindings' imports are stubs that panic.

use super::url::Url;
use super::{HttpErrorKind, Request, Response};
use wasip2::clocks::monotonic_clock;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, HeaderError, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
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
    request
        .set_method(&method)
        .map_err(|()| HttpErrorKind::Other(format!("the host refused method {}", req.method)))?;
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
