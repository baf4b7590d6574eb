//! gRPC over HTTP/2, the few parts wasmhook needs: message framing, status codes and their
//! wire form, and unary calls. Used by the CRI proxy (calls it answers or makes itself; the
//! calls it relays are never decoded here) and by grpc probes (`grpc.health.v1.Health/Check`).
//!
//! A leaf: it imports nothing of the crate, so both fronts can use it.
//!
//! Wire facts (gRPC over HTTP/2 spec):
//! - A message is a 5-byte prefix (compressed flag, big-endian length) and the bytes.
//! - The status travels in the trailers (`grpc-status`, `grpc-message`), or in the headers of
//!   a trailers-only response; `grpc-message` is percent-encoded.

use std::fmt;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};

/// The body type of every request and response built here (and relayed by the CRI proxy).
pub type Body = BoxBody<Bytes, BoxError>;
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The largest message the kubelet (and containerd, and grpc-go's default receiver) accept: 16 MiB.
pub const MAX_MESSAGE: usize = 16 << 20;

/// gRPC status codes, all seventeen (a probe prints whichever the server sent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Code {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

impl Code {
    /// The code numbered `n`; numbers past 16 are `Unknown`.
    pub fn from_u32(n: u32) -> Code {
        match n {
            0 => Code::Ok,
            1 => Code::Cancelled,
            3 => Code::InvalidArgument,
            4 => Code::DeadlineExceeded,
            5 => Code::NotFound,
            6 => Code::AlreadyExists,
            7 => Code::PermissionDenied,
            8 => Code::ResourceExhausted,
            9 => Code::FailedPrecondition,
            10 => Code::Aborted,
            11 => Code::OutOfRange,
            12 => Code::Unimplemented,
            13 => Code::Internal,
            14 => Code::Unavailable,
            15 => Code::DataLoss,
            16 => Code::Unauthenticated,
            _ => Code::Unknown,
        }
    }

    /// grpc-go's spelling, as in `rpc error: code = DeadlineExceeded desc = ...`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Ok => "OK",
            Code::Cancelled => "Canceled",
            Code::Unknown => "Unknown",
            Code::InvalidArgument => "InvalidArgument",
            Code::DeadlineExceeded => "DeadlineExceeded",
            Code::NotFound => "NotFound",
            Code::AlreadyExists => "AlreadyExists",
            Code::PermissionDenied => "PermissionDenied",
            Code::ResourceExhausted => "ResourceExhausted",
            Code::FailedPrecondition => "FailedPrecondition",
            Code::Aborted => "Aborted",
            Code::OutOfRange => "OutOfRange",
            Code::Unimplemented => "Unimplemented",
            Code::Internal => "Internal",
            Code::Unavailable => "Unavailable",
            Code::DataLoss => "DataLoss",
            Code::Unauthenticated => "Unauthenticated",
        }
    }
}

/// A gRPC status that is not OK: a code and its message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub message: String,
}

impl Status {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Status {
            code,
            message: message.into(),
        }
    }

    /// The reply that carries this status: HTTP 200, `application/grpc`, no message, status
    /// in the headers (a "trailers-only" response, as grpc-go sends for early errors).
    pub fn into_response(self) -> Response<Body> {
        let mut resp = Response::new(empty_body());
        let h = resp.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        h.insert("grpc-status", HeaderValue::from(self.code as u16));
        if let Ok(v) = HeaderValue::from_str(&percent_encode(&self.message)) {
            h.insert("grpc-message", v);
        }
        resp
    }
}

impl fmt::Display for Status {
    /// grpc-go's `status.Error` text, which the kubelet puts into its messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rpc error: code = {} desc = {}",
            self.code.as_str(),
            self.message
        )
    }
}

impl std::error::Error for Status {}

/// `msg` as one length-prefixed gRPC message.
pub fn frame(msg: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(5 + msg.len());
    b.put_u8(0);
    b.put_u32(msg.len() as u32);
    b.put_slice(msg);
    b.freeze()
}

/// The single uncompressed message of a unary call's body. `None` when the body is not
/// exactly one uncompressed message (then the CRI proxy does not claim the call).
pub fn unframe(mut body: Bytes) -> Option<Bytes> {
    if body.len() < 5 || body[0] != 0 {
        return None;
    }
    body.advance(1);
    let len = body.get_u32() as usize;
    (body.len() == len).then_some(body)
}

/// A successful unary reply: headers, one message, `grpc-status: 0` in the trailers.
pub fn ok_response(msg: &impl prost::Message) -> Response<Body> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let body = Full::new(frame(&msg.encode_to_vec()))
        .with_trailers(async move { Some(Ok(trailers)) })
        .map_err(|never| match never {})
        .boxed();
    let mut resp = Response::new(body);
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    resp
}

pub fn empty_body() -> Body {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed()
}

pub fn full_body(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

/// Percent-encode a `grpc-message` value: bytes outside printable ASCII, and `%`.
pub fn percent_encode(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    for &b in msg.as_bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decode a `grpc-message` value (invalid escapes are kept as written, as grpc-go does).
pub fn percent_decode(v: &[u8]) -> String {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%' && i + 2 < v.len() {
            if let Ok(b) = u8::from_str_radix(&String::from_utf8_lossy(&v[i + 1..i + 3]), 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(v[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The status of a finished call, from its trailers (or trailers-only headers).
/// `None` when neither carries `grpc-status`.
pub fn status_of(headers: &HeaderMap) -> Option<Result<(), Status>> {
    let code = headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .parse::<u32>()
        .ok()?;
    if code == 0 {
        return Some(Ok(()));
    }
    let message = headers
        .get("grpc-message")
        .map(|v| percent_decode(v.as_bytes()))
        .unwrap_or_default();
    Some(Err(Status::new(Code::from_u32(code), message)))
}

/// A unary request for `path` (`/runtime.v1.RuntimeService/ContainerStatus`) carrying `msg`.
/// `timeout` becomes the `grpc-timeout` header, so the server gives up when we do.
pub fn unary_request(
    path: &str,
    msg: &impl prost::Message,
    timeout: Option<Duration>,
) -> Request<Body> {
    let mut req = Request::post(format!("http://localhost{path}"))
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
        .body(full_body(frame(&msg.encode_to_vec())))
        .expect("a static URI and headers are valid");
    if let Some(t) = timeout {
        // gRPC allows at most 8 digits: milliseconds cover 27 hours.
        let ms = t.as_millis().min(99_999_999);
        req.headers_mut().insert(
            "grpc-timeout",
            HeaderValue::from_str(&format!("{ms}m")).unwrap(),
        );
    }
    req
}

/// Read a unary response: its one message decoded as `R`, or the status it carried.
pub async fn read_unary<R: prost::Message + Default>(
    resp: Response<hyper::body::Incoming>,
) -> Result<R, Status> {
    let (parts, body) = resp.into_parts();
    if parts.status != http::StatusCode::OK {
        return Err(Status::new(
            Code::Unknown,
            format!("unexpected HTTP status {} from the runtime", parts.status),
        ));
    }
    if let Some(Err(s)) = status_of(&parts.headers) {
        return Err(s);
    }
    let collected = body
        .collect()
        .await
        .map_err(|e| Status::new(Code::Unavailable, format!("reading the reply: {e}")))?;
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let bytes = collected.to_bytes();
    match status_of(&trailers).or_else(|| status_of(&parts.headers)) {
        Some(Ok(())) => {}
        Some(Err(s)) => return Err(s),
        None => {
            return Err(Status::new(
                Code::Internal,
                "the runtime's reply carries no grpc-status",
            ))
        }
    }
    let msg = unframe(bytes)
        .ok_or_else(|| Status::new(Code::Internal, "the runtime's reply is not one message"))?;
    R::decode(msg).map_err(|e| Status::new(Code::Internal, format!("decoding the reply: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let f = frame(b"hello");
        assert_eq!(&f[..5], &[0, 0, 0, 0, 5]);
        assert_eq!(unframe(f).unwrap(), Bytes::from_static(b"hello"));
        // Compressed, short, or two messages: not one plain message.
        assert_eq!(unframe(Bytes::from_static(&[1, 0, 0, 0, 0])), None);
        assert_eq!(unframe(Bytes::from_static(&[0, 0, 0])), None);
        assert_eq!(unframe(Bytes::from_static(&[0, 0, 0, 0, 1, 7, 7])), None);
    }

    #[test]
    fn grpc_message_is_percent_encoded_both_ways() {
        let msg = "timeout 1s exceeded: 100% done\nnext ✓";
        let enc = percent_encode(msg);
        assert_eq!(enc, "timeout 1s exceeded: 100%25 done%0Anext %E2%9C%93");
        assert_eq!(percent_decode(enc.as_bytes()), msg);
        assert_eq!(percent_decode(b"50%"), "50%");
        assert_eq!(percent_decode(b"%zz"), "%zz");
    }

    #[test]
    fn status_comes_from_trailers() {
        let mut h = HeaderMap::new();
        assert_eq!(status_of(&h), None);
        h.insert("grpc-status", HeaderValue::from_static("4"));
        h.insert("grpc-message", HeaderValue::from_static("too%20slow"));
        assert_eq!(
            status_of(&h),
            Some(Err(Status::new(Code::DeadlineExceeded, "too slow")))
        );
        assert_eq!(
            Status::new(Code::DeadlineExceeded, "x").to_string(),
            "rpc error: code = DeadlineExceeded desc = x"
        );
    }
}
