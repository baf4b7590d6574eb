//! The OCI runtime spec (`config.json`) of one container, built with `oci-spec`.
//!
//! Starts from `oci-spec`'s defaults, which are `runc spec`'s (the /proc, /dev, /dev/pts,
//! /dev/shm, /dev/mqueue, /sys and cgroup mounts, masked and read-only paths, the default
//! capability set, `noNewPrivileges`, RLIMIT_NOFILE 1024), then sets what the pod decides.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    LinuxBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxMemoryBuilder,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxResourcesBuilder, MountBuilder, ProcessBuilder,
    RootBuilder, Spec, UserBuilder,
};

use crate::backend::Mount;

/// CFS period for CPU limits, as the kubelet uses.
const CPU_PERIOD_US: u64 = 100_000;

pub struct SpecInput<'a> {
    pub rootfs: &'a Path,
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub hostname: String,
    pub netns: &'a Path,
    pub mounts: &'a [Mount],
    /// `None`: the host cannot apply cgroup limits, so none are set.
    pub memory_limit: Option<u64>,
    pub cpu_limit_millis: Option<u64>,
}

pub fn build(input: &SpecInput<'_>) -> Result<Spec, String> {
    let e = |e: oci_spec::OciSpecError| e.to_string();
    let mut spec = Spec::default();
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(
            UserBuilder::default()
                .uid(0u32)
                .gid(0u32)
                .build()
                .map_err(e)?,
        )
        .args(input.argv.clone())
        .env(input.env.clone())
        .cwd(PathBuf::from(&input.cwd))
        .build()
        .map_err(e)?;
    // Keep the default capabilities, rlimits and noNewPrivileges.
    let defaults = spec.process().clone().unwrap_or_default();
    let mut process = process;
    process.set_capabilities(defaults.capabilities().clone());
    process.set_rlimits(defaults.rlimits().clone());
    process.set_no_new_privileges(defaults.no_new_privileges());
    spec.set_process(Some(process));
    spec.set_root(Some(
        RootBuilder::default()
            .path(input.rootfs.to_path_buf())
            .readonly(false)
            .build()
            .map_err(e)?,
    ));
    spec.set_hostname(Some(input.hostname.clone()));

    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for m in input.mounts {
        let mut options = vec!["rbind".to_string(), "rprivate".to_string()];
        options.push(if m.read_only { "ro" } else { "rw" }.to_string());
        mounts.push(
            MountBuilder::default()
                .destination(m.container_path.clone())
                .typ("bind")
                .source(m.host_path.clone())
                .options(options)
                .build()
                .map_err(e)?,
        );
    }
    spec.set_mounts(Some(mounts));

    let ns = |typ, path: Option<&Path>| {
        let b = LinuxNamespaceBuilder::default().typ(typ);
        match path {
            Some(p) => b.path(p.to_path_buf()).build(),
            None => b.build(),
        }
    };
    let namespaces = vec![
        ns(LinuxNamespaceType::Pid, None).map_err(e)?,
        ns(LinuxNamespaceType::Ipc, None).map_err(e)?,
        ns(LinuxNamespaceType::Uts, None).map_err(e)?,
        ns(LinuxNamespaceType::Mount, None).map_err(e)?,
        ns(LinuxNamespaceType::Network, Some(input.netns)).map_err(e)?,
    ];
    let mut resources = LinuxResourcesBuilder::default().devices(vec![
        // Deny every device but runc's defaults (/dev/null, /dev/zero, ...), as `runc spec`.
        LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()
            .map_err(e)?,
    ]);
    if let Some(bytes) = input.memory_limit {
        resources = resources.memory(
            LinuxMemoryBuilder::default()
                .limit(i64::try_from(bytes).unwrap_or(i64::MAX))
                .build()
                .map_err(e)?,
        );
    }
    if let Some(millis) = input.cpu_limit_millis {
        // The kubelet's conversion: quota = millis * period / 1000, at least 1 ms.
        let quota = (millis * CPU_PERIOD_US / 1000).max(1000);
        resources = resources.cpu(
            LinuxCpuBuilder::default()
                .quota(i64::try_from(quota).unwrap_or(i64::MAX))
                .period(CPU_PERIOD_US)
                .build()
                .map_err(e)?,
        );
    }
    let default_linux = spec.linux().clone().unwrap_or_default();
    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .resources(resources.build().map_err(e)?)
        .build()
        .map_err(e)?;
    linux.set_masked_paths(default_linux.masked_paths().clone());
    linux.set_readonly_paths(default_linux.readonly_paths().clone());
    spec.set_linux(Some(linux));
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_has_pod_netns_volumes_and_limits() {
        let mounts = vec![Mount {
            host_path: "/tmp/v".into(),
            container_path: "/data".into(),
            read_only: true,
        }];
        let spec = build(&SpecInput {
            rootfs: Path::new("/b/rootfs"),
            argv: vec!["sh".into(), "-c".into(), "true".into()],
            env: vec!["A=1".into()],
            cwd: "/".into(),
            hostname: "pod".into(),
            netns: Path::new("/run/netns/x"),
            mounts: &mounts,
            memory_limit: Some(64 << 20),
            cpu_limit_millis: Some(250),
        })
        .unwrap();
        let json = serde_json::to_value(&spec).unwrap();
        let nss = json["linux"]["namespaces"].as_array().unwrap();
        assert!(nss
            .iter()
            .any(|n| n["type"] == "network" && n["path"] == "/run/netns/x"));
        assert_eq!(nss.len(), 5);
        let m = json["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/data")
            .unwrap();
        assert_eq!(m["options"], serde_json::json!(["rbind", "rprivate", "ro"]));
        assert!(json["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["destination"] == "/proc"));
        assert_eq!(json["linux"]["resources"]["memory"]["limit"], 64 << 20);
        assert_eq!(json["linux"]["resources"]["cpu"]["quota"], 25000);
        assert_eq!(json["process"]["args"][2], "true");
        assert_eq!(json["process"]["user"]["uid"], 0);
    }
}
