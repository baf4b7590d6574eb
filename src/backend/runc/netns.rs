//! The pod's network namespace: `ip netns add wasmhook-<sandbox id>` with `lo` up, and its
//! removal. A missing `ip` makes the backend [`ErrorKind::Unavailable`].

use std::path::PathBuf;
use std::process::Stdio;

use crate::backend::{BackendError, ErrorKind, Result};

/// The netns of a sandbox. Names are at most 255 bytes; a sandbox id is at most ~48.
pub(super) fn name(sandbox_id: &str) -> String {
    format!("wasmhook-{sandbox_id}")
}

/// The bind-mounted nsfs file of the netns `name`.
pub(super) fn path(name: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(name)
}

/// Create the netns `name` with `lo` up; nothing is left on failure.
pub(super) async fn add(name: &str) -> Result<()> {
    run_ip(&["netns", "add", name]).await?;
    if let Err(e) = run_ip(&["-n", name, "link", "set", "lo", "up"]).await {
        delete_blocking(name);
        return Err(e);
    }
    Ok(())
}

/// Delete the netns `name`.
pub(super) async fn delete(name: &str) -> Result<()> {
    run_ip(&["netns", "delete", name]).await
}

async fn run_ip(args: &[&str]) -> Result<()> {
    let out = tokio::process::Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| {
            BackendError::new(
                ErrorKind::Unavailable,
                format!("ip {}: {e} (is iproute2 installed?)", args.join(" ")),
            )
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(BackendError::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Blocking delete, errors ignored. For `Drop` and undoing a failed `add`.
pub(super) fn delete_blocking(name: &str) {
    let _ = std::process::Command::new("ip")
        .args(["netns", "delete", name])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
