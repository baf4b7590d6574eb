//! The API server's defaulting (`pkg/apis/core/v1/defaults.go`) for the fields wasmhook
//! reads, plus what the API server fills in on create (namespace, uid, a name from
//! `generateName`).
//!
//! Invariants: only unset (or empty-string, where Go cannot tell the difference) fields are
//! touched, so applying twice changes nothing; the generated uid and name depend only on the
//! manifest content (namespace, name, source file, document), so repeated runs agree.

use std::path::Path;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EphemeralContainer, HTTPGetAction, Lifecycle, LifecycleHandler, Pod,
    PodSpec, Probe,
};
use sha2::{Digest, Sha256};

/// `spec.terminationGracePeriodSeconds` when unset.
pub const DEFAULT_GRACE_SECONDS: i64 = 30;

fn unset(s: &Option<String>) -> bool {
    s.as_deref().is_none_or(str::is_empty)
}

fn set_if_unset(s: &mut Option<String>, value: &str) {
    if unset(s) {
        *s = Some(value.to_string());
    }
}

/// Apply the defaults in place. `source` and `document` only seed generated names.
pub(super) fn apply(pod: &mut Pod, source: &Path, document: usize) {
    let meta = &mut pod.metadata;
    set_if_unset(&mut meta.namespace, "default");
    if unset(&meta.name) {
        if let Some(prefix) = meta.generate_name.as_deref().filter(|p| !p.is_empty()) {
            let seed = format!("{}\0{}\0{}", prefix, source.display(), document);
            meta.name = Some(format!("{prefix}{}", name_suffix(&seed)));
        }
    }
    if unset(&meta.uid) {
        let seed = format!(
            "{}\0{}",
            meta.namespace.as_deref().unwrap_or(""),
            meta.name.as_deref().unwrap_or("")
        );
        meta.uid = Some(uid_from(&seed));
    }
    let spec = pod.spec.get_or_insert_with(PodSpec::default);
    set_if_unset(&mut spec.restart_policy, "Always");
    if spec.termination_grace_period_seconds.is_none() {
        spec.termination_grace_period_seconds = Some(DEFAULT_GRACE_SECONDS);
    }
    set_if_unset(&mut spec.dns_policy, "ClusterFirst");
    for c in spec.containers.iter_mut() {
        container(c);
    }
    for c in spec.init_containers.iter_mut().flatten() {
        container(c);
    }
    for c in spec.ephemeral_containers.iter_mut().flatten() {
        ephemeral(c);
    }
    for v in spec.volumes.iter_mut().flatten() {
        if let Some(hp) = v.host_path.as_mut() {
            set_if_unset(&mut hp.type_, "");
        }
    }
}

fn container(c: &mut Container) {
    common(
        &c.image,
        &mut c.image_pull_policy,
        &mut c.termination_message_path,
        &mut c.termination_message_policy,
    );
    ports(c.ports.as_mut());
    lifecycle(c.lifecycle.as_mut());
    for p in [
        c.liveness_probe.as_mut(),
        c.readiness_probe.as_mut(),
        c.startup_probe.as_mut(),
    ]
    .into_iter()
    .flatten()
    {
        probe(p);
    }
}

fn ephemeral(c: &mut EphemeralContainer) {
    common(
        &c.image,
        &mut c.image_pull_policy,
        &mut c.termination_message_path,
        &mut c.termination_message_policy,
    );
    ports(c.ports.as_mut());
    lifecycle(c.lifecycle.as_mut());
}

fn common(
    image: &Option<String>,
    pull: &mut Option<String>,
    msg_path: &mut Option<String>,
    msg_policy: &mut Option<String>,
) {
    if unset(pull) {
        *pull = Some(default_pull_policy(image.as_deref().unwrap_or("")).to_string());
    }
    set_if_unset(msg_path, "/dev/termination-log");
    set_if_unset(msg_policy, "File");
}

/// `Always` for `:latest` or untagged images, `IfNotPresent` otherwise (digests included).
pub(crate) fn default_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, tag)) if !tag.is_empty() && tag != "latest" => "IfNotPresent",
        _ => "Always",
    }
}

fn ports(ports: Option<&mut Vec<ContainerPort>>) {
    for p in ports.into_iter().flatten() {
        set_if_unset(&mut p.protocol, "TCP");
    }
}

fn lifecycle(lc: Option<&mut Lifecycle>) {
    let Some(lc) = lc else { return };
    for h in [lc.post_start.as_mut(), lc.pre_stop.as_mut()]
        .into_iter()
        .flatten()
    {
        handler(h);
    }
}

fn handler(h: &mut LifecycleHandler) {
    if let Some(g) = h.http_get.as_mut() {
        http_get(g);
    }
}

fn http_get(g: &mut HTTPGetAction) {
    set_if_unset(&mut g.path, "/");
    set_if_unset(&mut g.scheme, "HTTP");
}

fn probe(p: &mut Probe) {
    if let Some(g) = p.http_get.as_mut() {
        http_get(g);
    }
    // Go cannot tell 0 from unset: both get the default.
    for (field, default) in [
        (&mut p.timeout_seconds, 1),
        (&mut p.period_seconds, 10),
        (&mut p.success_threshold, 1),
        (&mut p.failure_threshold, 3),
    ] {
        if field.is_none_or(|n| n == 0) {
            *field = Some(default);
        }
    }
    if let Some(g) = p.grpc.as_mut() {
        set_if_unset(&mut g.service, "");
    }
}

/// A UUID-shaped (version 5 layout) id derived from `seed`.
fn uid_from(seed: &str) -> String {
    let digest = Sha256::digest(format!("wasmhook-uid\0{seed}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Five characters from the API server's `generateName` alphabet.
fn name_suffix(seed: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    Sha256::digest(seed.as_bytes())
        .iter()
        .take(5)
        .map(|x| ALPHABET[usize::from(*x) % ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy() {
        assert_eq!(default_pull_policy("nginx"), "Always");
        assert_eq!(default_pull_policy("nginx:latest"), "Always");
        assert_eq!(default_pull_policy("nginx:1.27"), "IfNotPresent");
        assert_eq!(default_pull_policy("localhost:5000/app"), "Always");
        assert_eq!(default_pull_policy("app@sha256:abc"), "IfNotPresent");
    }

    #[test]
    fn uid_shape() {
        let u = uid_from("default\0web");
        assert_eq!(u.len(), 36);
        assert_eq!(u, uid_from("default\0web"));
        assert_eq!(&u[14..15], "5");
    }
}
