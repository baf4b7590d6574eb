//! wasmhook's pod annotations: per-hook limits and switches.
//!
//! Keys are `wasmhook.dev/<setting>`, optionally suffixed `.<container>` or
//! `.<container>.<postStart|preStop>`:
//!
//! | setting | value |
//! |---|---|
//! | `hook-timeout` | Go duration (`500ms`, `5s`, `2m`, `1m30s`), > 0 |
//! | `hook-fuel` | integer ≥ 1 (instruction budget) |
//! | `hook-max-memory` | Kubernetes quantity (`64Mi`, `1Gi`, `500M`, bytes), > 0 |
//! | `hook-network` | `deny` \| `pod` \| `allow` \| an allow-list (`127.0.0.1:8080,[::1]:8080,localhost:9901`), see [`crate::hook::network`] |
//! | `http-status` | `ignore` \| `strict` |
//!
//! plus the pod-wide `wasmhook.dev/exec-policy` (`auto` \| `wasm-only`, see
//! [`crate::hook::ExecPolicy`]; the stricter of it and `--exec-policy` applies).
//!
//! Resolution: most specific wins (`.<container>.<hook>` over `.<container>` over pod-wide),
//! engine defaults underneath. Container suffixes may name regular or init containers.
//!
//! Invariants: [`validate`] reports every unknown `wasmhook.dev/` key, bad value, unknown
//! container and bad hook kind, at `metadata.annotations[<key>]`. [`hook_settings`] and
//! [`exec_policy`] assume a validated pod and silently ignore what does not parse.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use super::units::{parse_go_duration, parse_quantity_bytes};
use super::{BadValue, FieldError};
use crate::hook::network::ParseError;
use crate::hook::{ExecPolicy, HookKind, HookNetwork, HookSettings, HttpStatusMode};

/// The annotation namespace wasmhook owns.
pub const PREFIX: &str = "wasmhook.dev/";
pub const HOOK_TIMEOUT: &str = "wasmhook.dev/hook-timeout";
pub const HOOK_FUEL: &str = "wasmhook.dev/hook-fuel";
pub const HOOK_MAX_MEMORY: &str = "wasmhook.dev/hook-max-memory";
pub const HOOK_NETWORK: &str = "wasmhook.dev/hook-network";
pub const HTTP_STATUS: &str = "wasmhook.dev/http-status";
pub const EXEC_POLICY: &str = "wasmhook.dev/exec-policy";

/// The settings that take container/hook suffixes.
const SETTINGS: [&str; 5] = [
    "hook-timeout",
    "hook-fuel",
    "hook-max-memory",
    "hook-network",
    "http-status",
];

/// A parsed setting value.
#[derive(Clone, Debug, PartialEq)]
enum Value {
    Timeout(Duration),
    Fuel(u64),
    MaxMemory(u64),
    Network(HookNetwork),
    HttpStatus(HttpStatusMode),
}

/// Parse `value` for `setting` (the name without prefix); `Err` is a ready [`FieldError`]
/// for `path`.
fn parse_value(setting: &str, value: &str, path: &str) -> Result<Value, FieldError> {
    let invalid = |detail: String| FieldError::invalid(path, BadValue::Str(value.into()), detail);
    match setting {
        "hook-timeout" => match parse_go_duration(value) {
            Ok(d) if d.is_zero() => Err(invalid("must be greater than zero".into())),
            Ok(d) => Ok(Value::Timeout(d)),
            Err(e) => Err(invalid(e)),
        },
        "hook-fuel" => match value.parse::<u64>() {
            Ok(0) => Err(invalid("must be greater than zero".into())),
            Ok(n) if value.bytes().all(|b| b.is_ascii_digit()) => Ok(Value::Fuel(n)),
            _ => Err(invalid("must be a positive integer".into())),
        },
        "hook-max-memory" => match parse_quantity_bytes(value) {
            Ok(0) => Err(invalid("must be greater than zero".into())),
            Ok(n) => Ok(Value::MaxMemory(n)),
            Err(e) => Err(invalid(e)),
        },
        "hook-network" => match value.parse() {
            Ok(n) => Ok(Value::Network(n)),
            Err(ParseError::UnknownKeyword) => Err(FieldError::not_supported(
                path,
                value,
                &HookNetwork::KEYWORDS,
            )),
            Err(ParseError::BadEntry(why)) => Err(invalid(why)),
        },
        "http-status" => match value {
            "ignore" => Ok(Value::HttpStatus(HttpStatusMode::Ignore)),
            "strict" => Ok(Value::HttpStatus(HttpStatusMode::Strict)),
            _ => Err(FieldError::not_supported(
                path,
                value,
                &["ignore", "strict"],
            )),
        },
        _ => Err(FieldError::not_supported(path, setting, &SETTINGS)),
    }
}

/// A `wasmhook.dev/` key split into setting and optional suffixes.
struct Key<'a> {
    setting: &'a str,
    container: Option<&'a str>,
    hook: Option<&'a str>,
    /// More than two dot-separated suffixes.
    extra: bool,
}

fn split_key(name: &str) -> Key<'_> {
    let mut parts = name.splitn(4, '.');
    let setting = parts.next().unwrap_or("");
    let container = parts.next();
    let hook = parts.next();
    Key {
        setting,
        container,
        hook,
        extra: parts.next().is_some(),
    }
}

fn annotations(pod: &Pod) -> Option<&BTreeMap<String, String>> {
    pod.metadata.annotations.as_ref()
}

fn container_names(pod: &Pod) -> Vec<&str> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .map(|c| c.name.as_str())
        .collect()
}

/// Check every `wasmhook.dev/` annotation; push one error per problem.
pub(super) fn validate(pod: &Pod, errs: &mut Vec<FieldError>) {
    let Some(map) = annotations(pod) else { return };
    let containers = container_names(pod);
    for (key, value) in map {
        let Some(name) = key.strip_prefix(PREFIX) else {
            continue;
        };
        let path = format!("metadata.annotations[{key}]");
        if name == "exec-policy" {
            if ExecPolicy::parse(value).is_none() {
                errs.push(FieldError::not_supported(
                    &path,
                    value,
                    &ExecPolicy::KEYWORDS,
                ));
            }
            continue;
        }
        let k = split_key(name);
        if k.setting == "exec-policy" {
            errs.push(FieldError::invalid(
                &path,
                BadValue::Str(key.clone()),
                format!("{EXEC_POLICY} is pod-wide and takes no container or hook suffix"),
            ));
            continue;
        }
        if !SETTINGS.contains(&k.setting) {
            let mut known: Vec<String> = SETTINGS.iter().map(|s| format!("{PREFIX}{s}")).collect();
            known.push(EXEC_POLICY.to_string());
            let known: Vec<&str> = known.iter().map(String::as_str).collect();
            let base = format!("{PREFIX}{}", k.setting);
            errs.push(FieldError::not_supported(&path, &base, &known));
            continue;
        }
        if k.extra {
            errs.push(FieldError::invalid(
                &path,
                BadValue::Str(key.clone()),
                format!(
                    "must be {PREFIX}{s}, {PREFIX}{s}.<container> or {PREFIX}{s}.<container>.<postStart|preStop>",
                    s = k.setting
                ),
            ));
            continue;
        }
        if let Some(c) = k.container {
            if !containers.contains(&c) {
                errs.push(FieldError::not_found(
                    &path,
                    c,
                    "no container or init container has this name",
                ));
            }
        }
        if let Some(h) = k.hook {
            if h != "postStart" && h != "preStop" {
                errs.push(FieldError::not_supported(
                    &path,
                    h,
                    &["postStart", "preStop"],
                ));
            }
        }
        if let Err(e) = parse_value(k.setting, value, &path) {
            errs.push(e);
        }
    }
}

/// The most specific value of `setting` for this container and hook (`None`: a probe,
/// which only container-wide and pod-wide values apply to), if any parses.
fn lookup(
    map: &BTreeMap<String, String>,
    setting: &str,
    container: &str,
    kind: Option<HookKind>,
) -> Option<Value> {
    let per_hook = kind.map(|k| format!("{PREFIX}{setting}.{container}.{}", k.as_str()));
    let keys = [
        format!("{PREFIX}{setting}.{container}"),
        format!("{PREFIX}{setting}"),
    ];
    per_hook
        .iter()
        .chain(&keys)
        .filter_map(|k| map.get(k))
        .find_map(|v| parse_value(setting, v, "").ok())
}

/// The settings of one hook: `defaults` overridden by pod-wide, then per-container, then
/// per-hook annotations. Assumes the pod was validated (unparsable values are skipped).
/// Without a `Pod` (the CRI front has only the annotation map), see [`hook_settings_from`].
pub fn hook_settings(
    pod: &Pod,
    container: &str,
    kind: HookKind,
    defaults: &HookSettings,
) -> HookSettings {
    match annotations(pod) {
        Some(map) => hook_settings_from(map, container, Some(kind), defaults),
        None => defaults.clone(),
    }
}

/// The `hook-timeout` an annotation sets for this hook (most specific wins), `None` when
/// only the engine default applies. The engine needs the difference for preStop: its
/// deadline is the grace period, which the engine-wide default must not shorten
/// (`lifecycle-semantics.md` §10).
pub fn explicit_hook_timeout(pod: &Pod, container: &str, kind: HookKind) -> Option<Duration> {
    match lookup(annotations(pod)?, "hook-timeout", container, Some(kind)) {
        Some(Value::Timeout(d)) => Some(d),
        _ => None,
    }
}

/// The settings of a container's exec probes: pod-wide, then per-container annotations
/// over `defaults` (per-hook keys do not apply; a probe is no hook).
pub fn probe_settings(pod: &Pod, container: &str, defaults: &HookSettings) -> HookSettings {
    match annotations(pod) {
        Some(map) => hook_settings_from(map, container, None, defaults),
        None => defaults.clone(),
    }
}

/// [`hook_settings`] from a pod's annotation map (as the CRI proxy reads it from the pod
/// sandbox). `kind` is `None` for an exec probe: only pod-wide and per-container values
/// apply. Values that do not parse are skipped.
pub fn hook_settings_from(
    annotations: &BTreeMap<String, String>,
    container: &str,
    kind: Option<HookKind>,
    defaults: &HookSettings,
) -> HookSettings {
    let mut s = defaults.clone();
    for setting in SETTINGS {
        match lookup(annotations, setting, container, kind) {
            Some(Value::Timeout(d)) => s.timeout = d,
            Some(Value::Fuel(n)) => s.fuel = Some(n),
            Some(Value::MaxMemory(n)) => s.max_memory = n,
            Some(Value::Network(n)) => s.network = n,
            Some(Value::HttpStatus(m)) => s.http_status = m,
            None => {}
        }
    }
    s.exec_policy = exec_policy_from(annotations, defaults.exec_policy);
    s
}

/// The exec policy of a pod: the stricter of its `wasmhook.dev/exec-policy` and `default`
/// (the operator's `--exec-policy`).
pub fn exec_policy(pod: &Pod, default: ExecPolicy) -> ExecPolicy {
    match annotations(pod) {
        Some(map) => exec_policy_from(map, default),
        None => default,
    }
}

fn exec_policy_from(annotations: &BTreeMap<String, String>, default: ExecPolicy) -> ExecPolicy {
    annotations
        .get(EXEC_POLICY)
        .and_then(|v| ExecPolicy::parse(v))
        .map_or(default, |p| p.max(default))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_annotation_map_resolves_like_its_pod() {
        let map: BTreeMap<String, String> = [
            ("wasmhook.dev/hook-timeout", "5s"),
            ("wasmhook.dev/hook-timeout.app.preStop", "1m"),
            ("wasmhook.dev/hook-network.app", "pod"),
            ("wasmhook.dev/exec-policy", "wasm-only"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut pod = Pod::default();
        pod.metadata.annotations = Some(map.clone());
        let d = HookSettings::default();
        for kind in [HookKind::PostStart, HookKind::PreStop] {
            assert_eq!(
                hook_settings_from(&map, "app", Some(kind), &d),
                hook_settings(&pod, "app", kind, &d)
            );
        }
        let pre = hook_settings_from(&map, "app", Some(HookKind::PreStop), &d);
        assert_eq!(pre.timeout, Duration::from_secs(60));
        assert_eq!(pre.network, HookNetwork::Pod);
        assert_eq!(exec_policy(&pod, ExecPolicy::Auto), ExecPolicy::WasmOnly);
        assert_eq!(
            hook_settings(&Pod::default(), "app", HookKind::PreStop, &d),
            d
        );
    }
}
