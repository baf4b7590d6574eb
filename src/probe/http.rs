//! The httpGet probe: the hook's request ([`handlers::http::get`] as [`Caller::Prober`]),
//! judged like the kubelet's `DoHTTPProbe` (`pkg/probe/http/http.go`):
//!
//! - 200–399 succeeds, the body (at most 10 KiB) is the output; a final 3xx (a cross-host
//!   redirect the prober does not follow) is a [`ProbeResult::Warning`]
//!   `Probe terminated redirects, Response body: <body>`;
//! - any other status fails with `HTTP probe failed with statuscode: <n>`;
//! - a transport error (timeout included) fails with its text, `Get "<url>": ...`; an error
//!   reading the body fails with Go's bare read error;
//! - a request that cannot be made (bad port) and cancellation are [`ProbeResult::Unknown`].

use k8s_openapi::api::core::v1::HTTPGetAction;

use super::{ProbeContext, ProbeOutcome, ProbeResult};
use crate::handlers::http::{self as handlers, Caller, GetError, HttpClient};

pub async fn run(client: &HttpClient, action: &HTTPGetAction, ctx: &ProbeContext) -> ProbeOutcome {
    let got = handlers::get(
        client,
        action,
        &ctx.target,
        Caller::Prober,
        ctx.timeout,
        &ctx.cancel,
    )
    .await;
    let got = match got {
        Ok(got) => got,
        Err(GetError::Transport(text)) => return ProbeOutcome::new(ProbeResult::Failure, text),
        Err(e @ (GetError::Request(_) | GetError::Canceled(_))) => {
            return ProbeOutcome::new(ProbeResult::Unknown, e.into_text())
        }
    };
    if let Some(err) = got.body_error {
        return ProbeOutcome::new(ProbeResult::Failure, err);
    }
    let body = String::from_utf8_lossy(&got.body);
    match got.status.as_u16() {
        200..=299 => ProbeOutcome::new(ProbeResult::Success, body),
        300..=399 => ProbeOutcome::new(
            ProbeResult::Warning,
            format!("Probe terminated redirects, Response body: {body}"),
        ),
        // "Until https://issue.k8s.io/99425 is solved, this format must be maintained."
        n => ProbeOutcome::new(
            ProbeResult::Failure,
            format!("HTTP probe failed with statuscode: {n}"),
        ),
    }
}
