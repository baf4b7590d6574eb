//! A container's filesystem and environment: the rootfs (an overlay over the image, or a
//! copy), the bundle's removal, the merged environment, and whether cgroup limits apply.

use std::collections::HashMap;
use std::path::Path;

/// Undo the overlay (lazily: a dying container may still hold it) and delete the bundle.
pub(super) fn remove_bundle(bundle: &Path, overlay: bool) {
    let rootfs = bundle.join("rootfs");
    if overlay {
        if let Err(e) = rustix::mount::unmount(&rootfs, rustix::mount::UnmountFlags::DETACH) {
            tracing::warn!("unmounting {}: {e}", rootfs.display());
        }
    }
    if let Err(e) = std::fs::remove_dir_all(bundle) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("removing {}: {e}", bundle.display());
        }
    }
}

/// cgroup v2 with the memory and cpu controllers, or v1 memory and cpu hierarchies.
pub(super) fn cgroup_limits_available() -> bool {
    let root = Path::new("/sys/fs/cgroup");
    if let Ok(c) = std::fs::read_to_string(root.join("cgroup.controllers")) {
        return c.split_whitespace().any(|x| x == "memory")
            && c.split_whitespace().any(|x| x == "cpu");
    }
    root.join("memory/memory.limit_in_bytes").exists()
        && (root.join("cpu/cpu.cfs_quota_us").exists()
            || root.join("cpu,cpuacct/cpu.cfs_quota_us").exists())
}

/// `KEY=value` list where later keys win, keeping first-seen order.
pub(super) fn merge_env(image: &[String], spec: &[(String, String)]) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    let mut values: HashMap<String, String> = HashMap::new();
    let pairs = image
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.clone(), String::new()),
        })
        .chain(spec.iter().cloned());
    for (k, v) in pairs {
        if values.insert(k.clone(), v).is_none() {
            order.push(k);
        }
    }
    if !values.contains_key("PATH") {
        order.insert(0, "PATH".into());
        values.insert("PATH".into(), crate::backend::process::DEFAULT_PATH.into());
    }
    order
        .into_iter()
        .map(|k| {
            let v = &values[&k];
            format!("{k}={v}")
        })
        .collect()
}

/// Mount an overlay of `lower` at `<bundle>/rootfs`; on failure copy `lower` there instead.
/// Returns whether it is an overlay.
pub(super) fn make_rootfs(bundle: &Path, lower: &Path) -> std::result::Result<bool, String> {
    let rootfs = bundle.join("rootfs");
    let upper = bundle.join("upper");
    let work = bundle.join("work");
    for d in [&rootfs, &upper, &work] {
        std::fs::create_dir_all(d).map_err(|e| format!("creating {}: {e}", d.display()))?;
    }
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    let data = std::ffi::CString::new(opts).map_err(|e| e.to_string())?;
    match rustix::mount::mount(
        "overlay",
        &rootfs,
        "overlay",
        rustix::mount::MountFlags::empty(),
        data.as_c_str(),
    ) {
        Ok(()) => Ok(true),
        Err(e) => {
            tracing::debug!("overlay for {}: {e}; copying the image", rootfs.display());
            let _ = std::fs::remove_dir(&rootfs);
            let out = std::process::Command::new("cp")
                .arg("-a")
                .arg(lower)
                .arg(&rootfs)
                .output()
                .map_err(|e| format!("copying the image: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "copying the image {}: {}",
                    lower.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            Ok(false)
        }
    }
}
