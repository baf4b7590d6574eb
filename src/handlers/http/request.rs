//! What an httpGet request is before it is sent: who makes it ([`Caller`]) and its URL and
//! headers, built once as Go's `NewRequestForHTTPGetAction` and `http.Header` do ([`Spec`]).

use http::header::{ACCEPT_ENCODING, CONNECTION, HOST, REFERER, USER_AGENT};
use http::{HeaderName, HeaderValue, Method, Request};
use http_body_util::Empty;
use hyper::body::Bytes;
use k8s_openapi::api::core::v1::HTTPGetAction;

use super::url::Url;
use super::{Fail, GetError, MAX_RESP_BODY};
use crate::events::go_quote;
use crate::handlers::tcp::host_or_pod_ip;
use crate::handlers::{resolve_port, HookTarget};

/// Who makes the request. The kubelet's lifecycle handler runner and its prober share the
/// request (`NewRequestForHTTPGetAction`) and the redirect policy (`RedirectChecker(false)`);
/// everything that differs between them is a method here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    /// httpGet hooks (`pkg/kubelet/lifecycle/handlers.go`).
    Lifecycle,
    /// httpGet probes (`pkg/probe/http/http.go`).
    Prober,
}

impl Caller {
    /// The `User-Agent` fragment: `kube-<fragment>/<major>.<minor>`.
    fn user_agent_fragment(self) -> &'static str {
        match self {
            Caller::Lifecycle => "lifecycle",
            Caller::Prober => "probe",
        }
    }

    /// The prober's transport has `DisableCompression`: no `Accept-Encoding: gzip`.
    fn compression(self) -> bool {
        self == Caller::Lifecycle
    }

    /// The prober's transport has `DisableKeepAlives`, so Go adds `Connection: close`.
    fn connection_close(self) -> bool {
        self == Caller::Prober
    }

    /// Only the lifecycle runner retries an HTTPS request in HTTP (`handlers.go`).
    pub(super) fn http_fallback(self) -> bool {
        self == Caller::Lifecycle
    }

    /// How the final body is read: the lifecycle runner drains and drops it
    /// (`discardHTTPRespBody`), the prober keeps it (`utilio.ReadAtMost`), read errors
    /// included.
    pub(super) fn final_body(self) -> BodyRead {
        match self {
            Caller::Lifecycle => BodyRead::Drain(MAX_RESP_BODY),
            Caller::Prober => BodyRead::Keep(MAX_RESP_BODY),
        }
    }
}

/// How much of a response body to read, and whether to keep it.
#[derive(Clone, Copy, Debug)]
pub(super) enum BodyRead {
    /// Go's drain before closing: read and drop at most `n` bytes, only when the length is
    /// unknown or at most `n`; read errors are ignored.
    Drain(u64),
    /// Read and keep the first `n` bytes whatever the length; a read error is reported.
    Keep(u64),
}

/// The request of an httpGet action, built once (Go's `NewRequestForHTTPGetAction`).
#[derive(Clone)]
pub(super) struct Spec {
    pub(super) url: Url,
    /// The `Host` header override (Go's `req.Host`), if non-empty.
    pub(super) host: Option<String>,
    user_agent: Option<HeaderValue>,
    /// Other headers by canonical name, sorted like Go writes them, values in order.
    fields: Vec<(String, HeaderName, Vec<HeaderValue>)>,
    /// The transport's `Accept-Encoding: gzip`.
    gzip: bool,
    pub(super) caller: Caller,
}

impl Spec {
    /// `Err` carries the complete error text: a bad port is a [`GetError::Request`], a bad
    /// header a [`GetError::Transport`] (Go rejects it in `Client.Do`).
    pub(super) fn new(
        action: &HTTPGetAction,
        target: &HookTarget,
        caller: Caller,
    ) -> Result<Spec, GetError> {
        let port = resolve_port(&action.port, target).map_err(GetError::Request)?;
        let scheme = match action.scheme.as_deref() {
            Some(s) if !s.is_empty() => s.to_ascii_lowercase(),
            _ => "http".to_owned(),
        };
        let host = host_or_pod_ip(action.host.as_deref(), target);
        let url = Url::for_action(&scheme, &host, port, action.path.as_deref().unwrap_or(""));

        // Go's http.Header: canonical key -> values in order.
        let mut map: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for h in action.http_headers.iter().flatten() {
            map.entry(canonical_key(&h.name))
                .or_default()
                .push(h.value.clone());
        }
        let first = |map: &std::collections::BTreeMap<String, Vec<String>>, k: &str| {
            map.get(k).and_then(|v| v.first()).cloned()
        };
        let user_agent = match map.remove("User-Agent") {
            Some(v) => v.into_iter().next().unwrap_or_default(),
            None => format!(
                "kube-{}/{}.{}",
                caller.user_agent_fragment(),
                crate::KUBERNETES_VERSION.0,
                crate::KUBERNETES_VERSION.1
            ),
        };
        match first(&map, "Accept") {
            None => {
                map.insert("Accept".to_owned(), vec!["*/*".to_owned()]);
            }
            Some(v) if v.is_empty() => {
                map.remove("Accept");
            }
            Some(_) => {}
        }
        let host_header = map.remove("Host").and_then(|v| v.into_iter().next());
        for k in ["Content-Length", "Transfer-Encoding", "Trailer"] {
            map.remove(k);
        }
        let gzip = caller.compression()
            && first(&map, "Accept-Encoding")
                .unwrap_or_default()
                .is_empty()
            && first(&map, "Range").unwrap_or_default().is_empty();

        let invalid = |what: String| {
            GetError::Transport(format!(
                "Get {}: {what}",
                go_quote(url.to_string().as_bytes())
            ))
        };
        let mut fields = Vec::with_capacity(map.len());
        for (key, values) in map {
            let name = HeaderName::from_bytes(key.as_bytes()).map_err(|_| {
                invalid(format!(
                    "net/http: invalid header field name {}",
                    go_quote(key.as_bytes())
                ))
            })?;
            let values = values
                .iter()
                .map(|v| HeaderValue::from_bytes(v.as_bytes()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| {
                    invalid(format!(
                        "net/http: invalid header field value for {}",
                        go_quote(key.as_bytes())
                    ))
                })?;
            fields.push((key, name, values));
        }
        let user_agent = match user_agent.as_str() {
            "" => None,
            ua => Some(HeaderValue::from_str(ua).map_err(|_| {
                invalid("net/http: invalid header field value for \"User-Agent\"".to_owned())
            })?),
        };
        Ok(Spec {
            url,
            host: host_header.filter(|h| !h.is_empty()),
            user_agent,
            fields,
            gzip,
            caller,
        })
    }

    /// The fallback request: `http`, no `Authorization` (kubelet's `req.Clone` + edits).
    pub(super) fn http_retry(&self) -> Spec {
        let mut spec = self.clone();
        spec.url.scheme = "http".to_owned();
        spec.fields.retain(|(key, _, _)| key != "Authorization");
        spec
    }

    /// One request of the chain to `url`, in Go's wire order: Host, User-Agent, the headers
    /// sorted by name, then the transport's `Accept-Encoding` and `Connection: close`.
    pub(super) fn request(
        &self,
        url: &Url,
        host: &str,
        referer: Option<&str>,
    ) -> Result<Request<Empty<Bytes>>, Fail> {
        let host =
            HeaderValue::from_str(host).map_err(|_| Fail::new("http: invalid Host header"))?;
        let mut req = Request::builder()
            .method(Method::GET)
            .uri(url.request_target())
            .body(Empty::new())
            .map_err(|e| Fail::new(format!("net/http: invalid request URI: {e}")))?;
        let headers = req.headers_mut();
        headers.insert(HOST, host);
        if let Some(ua) = &self.user_agent {
            headers.insert(USER_AGENT, ua.clone());
        }
        // A user-supplied Referer wins (Go's `refererForURL` explicit referer).
        let mut referer = referer
            .filter(|_| !self.fields.iter().any(|(k, _, _)| k == "Referer"))
            .and_then(|r| HeaderValue::from_str(r).ok());
        for (key, name, values) in &self.fields {
            if let Some(r) = referer.take_if(|_| key.as_str() > "Referer") {
                headers.append(REFERER, r);
            }
            for v in values {
                headers.append(name.clone(), v.clone());
            }
        }
        if let Some(r) = referer {
            headers.append(REFERER, r);
        }
        if self.gzip {
            headers.append(ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        }
        // Go's `req.wantsClose()`: a user `Connection: close` is not repeated.
        let wants_close = headers
            .get_all(CONNECTION)
            .iter()
            .any(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        if self.caller.connection_close() && !wants_close {
            headers.append(CONNECTION, HeaderValue::from_static("close"));
        }
        Ok(req)
    }
}

/// Go's `textproto.CanonicalMIMEHeaderKey`: `x-foo` -> `X-Foo`; names with bytes outside
/// the token set are left as they are (and then fail validation, as in Go).
fn canonical_key(name: &str) -> String {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return name.to_owned();
    }
    let mut upper = true;
    name.bytes()
        .map(|b| {
            let c = if upper {
                b.to_ascii_uppercase()
            } else {
                b.to_ascii_lowercase()
            };
            upper = b == b'-';
            c as char
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_keys_like_go() {
        assert_eq!(canonical_key("x-custom-header"), "X-Custom-Header");
        assert_eq!(canonical_key("USER-AGENT"), "User-Agent");
        assert_eq!(canonical_key("host"), "Host");
        assert_eq!(canonical_key("bad name"), "bad name");
    }
}
