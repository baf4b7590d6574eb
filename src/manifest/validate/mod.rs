//! Validation of a defaulted Pod: the API server's rules that matter for lifecycle hooks
//! (`pkg/apis/core/validation/validation.go`), with its field paths and messages, and
//! wasmhook's own checks (exec modules resolve and compile, supported volume kinds, named
//! hook ports exist, `wasmhook.dev/` annotations).
//!
//! Invariants:
//! - Every error is collected; nothing stops at the first one.
//! - Errors come in the API server's order: metadata, annotations, volumes, containers,
//!   init containers, ephemeral containers, pod-level fields.
//! - wasmhook-only checks use the same `<path>: <kind>: <detail>` shape; their details say
//!   what wasmhook needs, so they are never mistaken for API server verdicts.
//! - `check_module` is only called for exec handlers that would run (regular containers and
//!   `restartPolicy: Always` init containers, the handler actually dispatched).
//! - An exec handler's `command[0]` is a module when the host file it resolves to is one
//!   (`check_module` says); anything else is a native command, an error only under the
//!   `wasm-only` exec policy. A name ending in `.wasm`/`.wat`/`.cwasm` found nowhere is
//!   still "module not found", unless modules may come from the container's image
//!   ([`LoadOptions::modules_in_containers`]): then the image is searched when it runs.
//!
//! The pass, in the API server's order (which is part of the output), is in this file;
//! what a container's lifecycle handlers and probes must satisfy is in [`handler`].

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EphemeralContainer, Lifecycle, PodSpec, Probe, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{annotations, names, BadValue, FieldError, LoadOptions, ManifestPod};
use crate::hook::{ExecPolicy, HostCommand};

mod handler;

/// Resolve an exec hook's `command[0]` to a module file: absolute paths as they are; relative
/// ones against the manifest's directory, then `hooks_dir`. `Err` says what was tried.
pub fn resolve_module(
    command0: &str,
    manifest_dir: &Path,
    hooks_dir: Option<&Path>,
) -> Result<PathBuf, String> {
    if command0.is_empty() {
        return Err("module name is empty".to_string());
    }
    let given = Path::new(command0);
    let candidates: Vec<PathBuf> = if given.is_absolute() {
        vec![given.to_path_buf()]
    } else {
        std::iter::once(manifest_dir.join(given))
            .chain(hooks_dir.map(|d| d.join(given)))
            .collect()
    };
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    let tried: Vec<String> = candidates
        .iter()
        .map(|p| names::go_quote(&p.display().to_string()))
        .collect();
    Err(format!("module not found (tried {})", tried.join(", ")))
}

/// Validate a loaded pod; every problem, in the API server's form. `check_module` gets each
/// host file an exec handler's `command[0]` resolves to (the engine plugs the wasm runtime
/// in): a module, a native command, or why the module is invalid (reported at
/// `...exec.command[0]`).
pub fn validate(
    pod: &ManifestPod,
    opts: &LoadOptions,
    check_module: &dyn Fn(&Path) -> Result<HostCommand, String>,
) -> Vec<FieldError> {
    let mut v = Validator {
        errs: Vec::new(),
        manifest_dir: pod.manifest_dir(),
        hooks_dir: opts.hooks_dir.as_deref(),
        exec_policy: annotations::exec_policy(&pod.pod, opts.exec_policy),
        modules_in_containers: opts.modules_in_containers,
        check_module,
    };
    v.metadata(&pod.pod.metadata);
    annotations::validate(&pod.pod, &mut v.errs);
    let default_spec = PodSpec::default();
    v.spec(pod.pod.spec.as_ref().unwrap_or(&default_spec));
    v.errs
}

/// The fields of `Container` and `EphemeralContainer` validation looks at.
struct Ctr<'a> {
    name: &'a str,
    image: &'a str,
    ports: &'a [ContainerPort],
    volume_mounts: &'a [VolumeMount],
    lifecycle: Option<&'a Lifecycle>,
    restart_policy: Option<&'a str>,
    probes: [(&'static str, Option<&'a Probe>); 3],
    termination_message_policy: Option<&'a str>,
    image_pull_policy: Option<&'a str>,
    resources_set: bool,
}

impl<'a> From<&'a Container> for Ctr<'a> {
    fn from(c: &'a Container) -> Self {
        Ctr {
            name: &c.name,
            image: c.image.as_deref().unwrap_or(""),
            ports: c.ports.as_deref().unwrap_or(&[]),
            volume_mounts: c.volume_mounts.as_deref().unwrap_or(&[]),
            lifecycle: c.lifecycle.as_ref(),
            restart_policy: c.restart_policy.as_deref(),
            probes: [
                ("livenessProbe", c.liveness_probe.as_ref()),
                ("readinessProbe", c.readiness_probe.as_ref()),
                ("startupProbe", c.startup_probe.as_ref()),
            ],
            termination_message_policy: c.termination_message_policy.as_deref(),
            image_pull_policy: c.image_pull_policy.as_deref(),
            resources_set: c.resources.is_some(),
        }
    }
}

impl<'a> From<&'a EphemeralContainer> for Ctr<'a> {
    fn from(c: &'a EphemeralContainer) -> Self {
        Ctr {
            name: &c.name,
            image: c.image.as_deref().unwrap_or(""),
            ports: c.ports.as_deref().unwrap_or(&[]),
            volume_mounts: c.volume_mounts.as_deref().unwrap_or(&[]),
            lifecycle: c.lifecycle.as_ref(),
            restart_policy: c.restart_policy.as_deref(),
            probes: [
                ("livenessProbe", c.liveness_probe.as_ref()),
                ("readinessProbe", c.readiness_probe.as_ref()),
                ("startupProbe", c.startup_probe.as_ref()),
            ],
            termination_message_policy: c.termination_message_policy.as_deref(),
            image_pull_policy: c.image_pull_policy.as_deref(),
            resources_set: c.resources.is_some(),
        }
    }
}

struct Validator<'a> {
    errs: Vec<FieldError>,
    manifest_dir: &'a Path,
    hooks_dir: Option<&'a Path>,
    exec_policy: ExecPolicy,
    modules_in_containers: bool,
    check_module: &'a dyn Fn(&Path) -> Result<HostCommand, String>,
}

fn s(v: &str) -> BadValue {
    BadValue::Str(v.to_string())
}

impl Validator<'_> {
    fn push(&mut self, e: FieldError) {
        self.errs.push(e);
    }

    fn invalid_each(&mut self, path: &str, value: BadValue, msgs: Vec<String>) {
        for m in msgs {
            self.push(FieldError::invalid(path, value.clone(), m));
        }
    }

    fn metadata(&mut self, meta: &ObjectMeta) {
        let name = meta.name.as_deref().unwrap_or("");
        if name.is_empty() {
            self.push(FieldError::required(
                "metadata.name",
                "name or generateName is required",
            ));
        } else {
            self.invalid_each("metadata.name", s(name), names::is_dns1123_subdomain(name));
        }
        let ns = meta.namespace.as_deref().unwrap_or("default");
        self.invalid_each("metadata.namespace", s(ns), names::is_dns1123_label(ns));
    }

    fn spec(&mut self, spec: &PodSpec) {
        let grace = spec.termination_grace_period_seconds;
        let os = spec.os.as_ref().map(|o| o.name.as_str());
        let vols = self.volumes(spec.volumes.as_deref().unwrap_or(&[]));

        // Regular containers: names unique among themselves; init and ephemeral containers
        // report collisions on their side.
        if spec.containers.is_empty() {
            self.push(FieldError::required("spec.containers", ""));
        }
        let mut all_names: HashSet<&str> = HashSet::new();
        for (i, c) in spec.containers.iter().enumerate() {
            let path = format!("spec.containers[{i}]");
            let ctr = Ctr::from(c);
            self.common(&ctr, &path, &vols);
            if !all_names.insert(ctr.name) {
                self.push(FieldError::duplicate(format!("{path}.name"), ctr.name));
            }
            if let Some(lc) = ctr.lifecycle {
                self.lifecycle(&ctr, lc, &path, grace, os);
            }
            self.probes(&ctr, &path);
            if ctr.restart_policy.is_some() {
                self.push(FieldError::forbidden(
                    format!("{path}.restartPolicy"),
                    "may not be set for non-init containers",
                ));
            }
        }

        for (i, c) in spec.init_containers.iter().flatten().enumerate() {
            let path = format!("spec.initContainers[{i}]");
            let ctr = Ctr::from(c);
            self.common(&ctr, &path, &vols);
            let mut restart_always = false;
            if let Some(rp) = ctr.restart_policy {
                restart_always = rp == "Always";
                if !restart_always {
                    self.push(FieldError::not_supported(
                        format!("{path}.restartPolicy"),
                        rp,
                        &["Always"],
                    ));
                }
            }
            if all_names.contains(ctr.name) {
                self.push(FieldError::duplicate(format!("{path}.name"), ctr.name));
            } else if !ctr.name.is_empty() {
                all_names.insert(ctr.name);
            }
            if restart_always {
                if let Some(lc) = ctr.lifecycle {
                    self.lifecycle(&ctr, lc, &path, grace, os);
                }
                self.probes(&ctr, &path);
            } else {
                const MSG: &str = "may not be set for init containers without restartPolicy=Always";
                if ctr.lifecycle.is_some() {
                    self.push(FieldError::forbidden(format!("{path}.lifecycle"), MSG));
                }
                for (field, probe) in ctr.probes {
                    if probe.is_some() {
                        self.push(FieldError::forbidden(format!("{path}.{field}"), MSG));
                    }
                }
            }
        }

        let ephemeral = spec.ephemeral_containers.as_deref().unwrap_or(&[]);
        if !ephemeral.is_empty() {
            self.push(FieldError::forbidden(
                "spec.ephemeralContainers",
                "cannot be set on create",
            ));
        }
        for (i, c) in ephemeral.iter().enumerate() {
            let path = format!("spec.ephemeralContainers[{i}]");
            let ctr = Ctr::from(c);
            self.common(&ctr, &path, &vols);
            if !all_names.insert(ctr.name) {
                self.push(FieldError::duplicate(format!("{path}.name"), ctr.name));
            }
            const MSG: &str = "cannot be set for an Ephemeral Container";
            let mut forbidden: Vec<&str> = Vec::new();
            if ctr.lifecycle.is_some() {
                forbidden.push("lifecycle");
            }
            for (field, probe) in ctr.probes {
                if probe.is_some() {
                    forbidden.push(field);
                }
            }
            if !ctr.ports.is_empty() {
                forbidden.push("ports");
            }
            if ctr.resources_set {
                forbidden.push("resources");
            }
            if ctr.restart_policy.is_some() {
                forbidden.push("restartPolicy");
            }
            for field in forbidden {
                self.push(FieldError::forbidden(format!("{path}.{field}"), MSG));
            }
        }

        match spec.restart_policy.as_deref().unwrap_or("") {
            "Always" | "OnFailure" | "Never" => {}
            "" => self.push(FieldError::required("spec.restartPolicy", "")),
            other => self.push(FieldError::not_supported(
                "spec.restartPolicy",
                other,
                &["Always", "Never", "OnFailure"],
            )),
        }
        if let Some(g) = grace {
            if g < 0 {
                self.push(FieldError::invalid(
                    "spec.terminationGracePeriodSeconds",
                    BadValue::Int(g),
                    "must be greater than or equal to 0",
                ));
            }
        }
    }

    /// `ValidateVolumes`; returns the names of the volumes mounts may refer to (those without
    /// errors, as the API server does). wasmhook's unsupported-kind error does not remove a
    /// volume, so mounts of it are not reported twice.
    fn volumes(&mut self, vols: &[Volume]) -> HashSet<String> {
        let mut ok_names = HashSet::new();
        for (i, vol) in vols.iter().enumerate() {
            let path = format!("spec.volumes[{i}]");
            let mut el = Vec::new();
            let kinds = volume_kinds(vol);
            match kinds.split_first() {
                None => el.push(FieldError::required(&path, "must specify a volume type")),
                Some((_, extra)) => {
                    for k in extra {
                        el.push(FieldError::forbidden(
                            format!("{path}.{k}"),
                            "may not specify more than 1 volume type",
                        ));
                    }
                }
            }
            if let (Some(hp), Some("hostPath")) =
                (&vol.host_path, kinds.first().map(String::as_str))
            {
                let p = format!("{path}.hostPath");
                if hp.path.is_empty() {
                    el.push(FieldError::required(format!("{p}.path"), ""));
                } else {
                    if has_backsteps(&hp.path) {
                        el.push(FieldError::invalid(
                            format!("{p}.path"),
                            s(&hp.path),
                            "must not contain '..'",
                        ));
                    }
                    let t = hp.type_.as_deref().unwrap_or("");
                    const TYPES: [&str; 8] = [
                        "",
                        "BlockDevice",
                        "CharDevice",
                        "Directory",
                        "DirectoryOrCreate",
                        "File",
                        "FileOrCreate",
                        "Socket",
                    ];
                    if !TYPES.contains(&t) {
                        el.push(FieldError::not_supported(format!("{p}.type"), t, &TYPES));
                    }
                }
            }
            let name_path = format!("{path}.name");
            if vol.name.is_empty() {
                el.push(FieldError::required(&name_path, ""));
            } else {
                for m in names::is_dns1123_label(&vol.name) {
                    el.push(FieldError::invalid(&name_path, s(&vol.name), m));
                }
            }
            if ok_names.contains(&vol.name) {
                el.push(FieldError::duplicate(&name_path, &vol.name));
            }
            if el.is_empty() {
                ok_names.insert(vol.name.clone());
            } else {
                self.errs.extend(el);
            }
            if let Some(k) = kinds.first() {
                if k != "emptyDir" && k != "hostPath" {
                    self.push(FieldError::forbidden(
                        &path,
                        format!(
                            "{k} volumes are not supported: wasmhook supports emptyDir and hostPath volumes"
                        ),
                    ));
                }
            }
        }
        ok_names
    }

    /// `validateContainerCommon`: name, image, termination message policy, ports, volume
    /// mounts, pull policy.
    fn common(&mut self, c: &Ctr<'_>, path: &str, vols: &HashSet<String>) {
        let name_path = format!("{path}.name");
        if c.name.is_empty() {
            self.push(FieldError::required(name_path, ""));
        } else {
            self.invalid_each(&name_path, s(c.name), names::is_dns1123_label(c.name));
        }
        if c.image.is_empty() {
            self.push(FieldError::required(format!("{path}.image"), ""));
        }
        match c.termination_message_policy.unwrap_or("") {
            "File" | "FallbackToLogsOnError" => {}
            "" => self.push(FieldError::required(
                format!("{path}.terminationMessagePolicy"),
                "",
            )),
            other => self.push(FieldError::not_supported(
                format!("{path}.terminationMessagePolicy"),
                other,
                &["File", "FallbackToLogsOnError"],
            )),
        }
        self.ports(c.ports, path);
        self.volume_mounts(c.volume_mounts, path, vols);
        match c.image_pull_policy.unwrap_or("") {
            "Always" | "IfNotPresent" | "Never" => {}
            "" => self.push(FieldError::required(format!("{path}.imagePullPolicy"), "")),
            other => self.push(FieldError::not_supported(
                format!("{path}.imagePullPolicy"),
                other,
                &["Always", "IfNotPresent", "Never"],
            )),
        }
    }

    /// `validateContainerPorts`.
    fn ports(&mut self, ports: &[ContainerPort], path: &str) {
        let mut seen: HashSet<&str> = HashSet::new();
        for (i, p) in ports.iter().enumerate() {
            let idx = format!("{path}.ports[{i}]");
            if let Some(name) = p.name.as_deref().filter(|n| !n.is_empty()) {
                let msgs = names::is_valid_port_name(name);
                if !msgs.is_empty() {
                    self.invalid_each(&format!("{idx}.name"), s(name), msgs);
                } else if !seen.insert(name) {
                    self.push(FieldError::duplicate(format!("{idx}.name"), name));
                }
            }
            if p.container_port == 0 {
                self.push(FieldError::required(format!("{idx}.containerPort"), ""));
            } else {
                let n = i64::from(p.container_port);
                self.invalid_each(
                    &format!("{idx}.containerPort"),
                    BadValue::Int(n),
                    names::is_valid_port_num(n),
                );
            }
            if let Some(hp) = p.host_port.filter(|hp| *hp != 0) {
                let n = i64::from(hp);
                self.invalid_each(
                    &format!("{idx}.hostPort"),
                    BadValue::Int(n),
                    names::is_valid_port_num(n),
                );
            }
            match p.protocol.as_deref().unwrap_or("") {
                "TCP" | "UDP" | "SCTP" => {}
                "" => self.push(FieldError::required(format!("{idx}.protocol"), "")),
                other => self.push(FieldError::not_supported(
                    format!("{idx}.protocol"),
                    other,
                    &["SCTP", "TCP", "UDP"],
                )),
            }
        }
    }

    /// `validateVolumeMounts`. Note the API server's own quirk, kept: subPath errors are
    /// reported at `...volumeMounts.subPath`, without the index.
    fn volume_mounts(&mut self, mounts: &[VolumeMount], path: &str, vols: &HashSet<String>) {
        let list = format!("{path}.volumeMounts");
        let mut mountpoints: HashSet<&str> = HashSet::new();
        for (i, m) in mounts.iter().enumerate() {
            let idx = format!("{list}[{i}]");
            if m.name.is_empty() {
                self.push(FieldError::required(format!("{idx}.name"), ""));
            }
            if !vols.contains(&m.name) {
                self.push(FieldError::not_found(format!("{idx}.name"), &m.name, ""));
            }
            if m.mount_path.is_empty() {
                self.push(FieldError::required(format!("{idx}.mountPath"), ""));
            }
            if !mountpoints.insert(&m.mount_path) {
                self.push(FieldError::invalid(
                    format!("{idx}.mountPath"),
                    s(&m.mount_path),
                    "must be unique",
                ));
            }
            if let Some(sub) = m.sub_path.as_deref().filter(|p| !p.is_empty()) {
                if sub.starts_with('/') {
                    self.push(FieldError::invalid(
                        format!("{list}.subPath"),
                        s(sub),
                        "must be a relative path",
                    ));
                }
                if has_backsteps(sub) {
                    self.push(FieldError::invalid(
                        format!("{list}.subPath"),
                        s(sub),
                        "must not contain '..'",
                    ));
                }
            }
        }
    }
}

/// The volume sources set on `vol`, emptyDir and hostPath first (the API server's order),
/// then the others by field name.
fn volume_kinds(vol: &Volume) -> Vec<String> {
    let mut kinds: Vec<String> = match serde_json::to_value(vol) {
        Ok(serde_json::Value::Object(map)) => map
            .into_iter()
            .filter(|(k, v)| k != "name" && !v.is_null())
            .map(|(k, _)| k)
            .collect(),
        _ => Vec::new(),
    };
    let rank = |k: &str| match k {
        "emptyDir" => 0,
        "hostPath" => 1,
        _ => 2,
    };
    kinds.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
    kinds
}

/// `validatePathNoBacksteps`: any `..` path element.
fn has_backsteps(p: &str) -> bool {
    p.split(['/', '\\']).any(|e| e == "..")
}
