//! Rendering events for people (`kubectl get events`-like lines) and for programs (JSON lines).
//!
//! The JSON shape is a stable interface, documented in the README:
//! `{"timestamp": RFC 3339, "type": "Normal"|"Warning", "reason", "pod", "container", "message"}`.

use serde::Serialize;

use super::{Event, EventType, HookReport, ReadinessChange};
use crate::events::go_quote;

#[derive(Serialize)]
struct JsonEvent<'a> {
    timestamp: String,
    #[serde(rename = "type")]
    kind: EventType,
    reason: &'a str,
    pod: &'a str,
    container: Option<&'a str>,
    message: &'a str,
}

/// One JSON object, no trailing newline.
pub fn render_json(event: &Event) -> String {
    serde_json::to_string(&JsonEvent {
        timestamp: humantime::format_rfc3339_millis(event.timestamp).to_string(),
        kind: event.kind,
        reason: event.reason,
        pod: &event.pod,
        container: event.container.as_deref(),
        message: &event.message,
    })
    .expect("events serialise infallibly")
}

/// `TIME  TYPE  REASON  OBJECT  MESSAGE`, with the type coloured when `color` is set.
pub fn render_text(event: &Event, color: bool) -> String {
    let time = humantime::format_rfc3339_millis(event.timestamp).to_string();
    // Keep only the clock part: the date is noise in a live stream.
    let clock = time.get(11..23).unwrap_or(&time);
    let kind = match (event.kind, color) {
        (EventType::Normal, false) => "Normal ".to_owned(),
        (EventType::Warning, false) => "Warning".to_owned(),
        (EventType::Normal, true) => "\x1b[32mNormal \x1b[0m".to_owned(),
        (EventType::Warning, true) => "\x1b[33mWarning\x1b[0m".to_owned(),
    };
    let object = match &event.container {
        Some(c) => format!("pod/{}/{}", event.pod, c),
        None => format!("pod/{}", event.pod),
    };
    format!(
        "{clock}  {kind}  {:<20} {:<32} {}",
        event.reason, object, event.message
    )
}

/// A hook report as one JSON object:
/// `{"kind": "HookResult", "timestamp", "pod", "container", "hook", "handler", "native",
/// "success", "error", "output", "durationMs"}` (`native`: an exec hook that ran as a native
/// command in the container, not as wasm).
pub fn render_hook_json(r: &HookReport) -> String {
    serde_json::json!({
        "kind": "HookResult",
        "timestamp": humantime::format_rfc3339_millis(r.timestamp).to_string(),
        "pod": r.pod,
        "container": r.container,
        "hook": r.hook,
        "handler": r.handler,
        "native": r.native,
        "success": r.error.is_none(),
        "error": r.error,
        "output": String::from_utf8_lossy(&r.output),
        "durationMs": r.duration.as_secs_f64() * 1000.0,
    })
    .to_string()
}

/// A hook report for people: one line, then the failure message and output indented.
pub fn render_hook_text(r: &HookReport) -> String {
    let verdict = match &r.error {
        None => "ok".to_string(),
        Some(_) => "FAILED".to_string(),
    };
    let native = if r.native { " (native)" } else { "" };
    let mut out = format!(
        "{:>14}  hook {} {}{native} of pod/{}/{}: {verdict} in {:.1?}",
        "", r.hook, r.handler, r.pod, r.container, r.duration
    );
    if let Some(e) = &r.error {
        // Hook stderr inside the message may span lines: keep them under the report.
        for line in e.trim_end().lines() {
            out.push_str(&format!("\n{:>16}{line}", ""));
        }
    } else if !r.output.is_empty() {
        out.push_str(&format!("\n{:>16}output: {}", "", go_quote(&r.output)));
    }
    out
}

/// A readiness change as one JSON object: `{"kind": "Readiness", "timestamp", "pod",
/// "container", "ready", "readyContainers", "containers", "podReady"}`.
pub fn render_readiness_json(r: &ReadinessChange) -> String {
    serde_json::json!({
        "kind": "Readiness",
        "timestamp": humantime::format_rfc3339_millis(r.timestamp).to_string(),
        "pod": r.pod,
        "container": r.container,
        "ready": r.ready,
        "readyContainers": r.ready_containers,
        "containers": r.containers,
        "podReady": r.pod_ready(),
    })
    .to_string()
}

/// A readiness change for people: `pod/web/app ready (pod READY 2/2, Ready=True)`.
pub fn render_readiness_text(r: &ReadinessChange) -> String {
    let pod_ready = if r.pod_ready() { "True" } else { "False" };
    format!(
        "{:>14}  pod/{}/{} {} (pod READY {}/{}, Ready={pod_ready})",
        "",
        r.pod,
        r.container,
        if r.ready { "ready" } else { "not ready" },
        r.ready_containers,
        r.containers,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn event() -> Event {
        Event {
            timestamp: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            kind: EventType::Warning,
            reason: "FailedPostStartHook",
            pod: "web".into(),
            container: Some("app".into()),
            message: "PostStartHook failed".into(),
        }
    }

    #[test]
    fn json_is_the_documented_shape() {
        let v: serde_json::Value = serde_json::from_str(&render_json(&event())).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "timestamp": "2023-11-14T22:13:20.123Z",
                "type": "Warning",
                "reason": "FailedPostStartHook",
                "pod": "web",
                "container": "app",
                "message": "PostStartHook failed",
            })
        );
    }

    #[test]
    fn text_names_the_object() {
        let line = render_text(&event(), false);
        assert!(line.starts_with("22:13:20.123  Warning  FailedPostStartHook"));
        assert!(line.contains("pod/web/app"));
        assert!(line.ends_with("PostStartHook failed"));
    }
}
