//! Running runc: the command line every call shares, and reading its failures. This is the
//! one place where runc's output becomes a [`BackendError`] with an [`ErrorKind`]: callers
//! branch on the kind, never on runc's wording.

use std::path::Path;
use std::process::Stdio;

use super::RuncBackend;
use crate::backend::{BackendError, ErrorKind, Result};

impl RuncBackend {
    /// `runc --root <state_dir>/runc`, stdin `/dev/null`.
    pub(super) fn runc_cmd(&self) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.runc);
        c.arg("--root").arg(self.runc_root());
        c.stdin(Stdio::null());
        c
    }

    /// Run `runc <args>` (a `kill` or `delete`) to completion: `Ok`, or its failure
    /// classified ([`classify`]); runc that cannot be run at all is
    /// [`ErrorKind::Unavailable`].
    pub(super) async fn run_runc(&self, args: &[&str]) -> Result<()> {
        let out = self
            .runc_cmd()
            .args(args)
            .output()
            .await
            .map_err(|e| self.cannot_run(e))?;
        if out.status.success() {
            return Ok(());
        }
        let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(BackendError::new(classify(&msg), msg))
    }

    /// The error of a runc that did not start (missing binary, no permission).
    pub(super) fn cannot_run(&self, e: std::io::Error) -> BackendError {
        BackendError::unavailable(format!("running {}: {e}", self.runc.display()))
    }

    /// Blocking `runc delete --force <id>`, errors ignored. For `Drop` and undoing a
    /// failed create.
    pub(super) fn delete_blocking(&self, id: &str) {
        let _ = std::process::Command::new(&self.runc)
            .arg("--root")
            .arg(self.runc_root())
            .args(["delete", "--force", id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The kind of a runc failure, from its message (stderr, or the `msg` of its JSON log):
/// - [`ErrorKind::NotFound`]: the container does not exist, or is not running any more.
///   For `kill` and `delete` both mean "already gone", which counts as success (as CRI's
///   `StopContainer` treats it).
/// - [`ErrorKind::AlreadyExists`]: `runc create` with an id in use ("container with id
///   exists").
/// - [`ErrorKind::Other`]: anything else.
pub(super) fn classify(msg: &str) -> ErrorKind {
    if msg.contains("does not exist") || msg.contains("not exist") || msg.contains("not running") {
        ErrorKind::NotFound
    } else if msg.contains("with id exists") || msg.contains("already exists") {
        ErrorKind::AlreadyExists
    } else {
        ErrorKind::Other
    }
}

/// The last error runc logged (`--log-format json`), else `fallback` (its stderr).
pub(super) fn runc_error(log: &Path, fallback: &[u8]) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let last = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["level"] == "error" || v["level"] == "fatal")
        .filter_map(|v| v["msg"].as_str().map(str::to_owned))
        .next_back();
    last.unwrap_or_else(|| String::from_utf8_lossy(fallback).trim().to_string())
}

/// `message`, with the kind of runc's own failure text `runc`.
pub(super) fn runc_failure(runc: &str, message: String) -> BackendError {
    BackendError::new(classify(runc), message)
}

/// Whether this host can run the runc backend: root, and `runc` runs.
pub fn available(runc: Option<&Path>) -> std::result::Result<(), String> {
    if !rustix::process::geteuid().is_root() {
        return Err("the runc backend needs root".into());
    }
    let runc = runc.unwrap_or(Path::new("runc"));
    match std::process::Command::new(runc).arg("--version").output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "{} --version failed: {}",
            runc.display(),
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("{}: {e} (apt-get install runc)", runc.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_messages_are_classified_once() {
        for gone in [
            "container \"x\" does not exist",
            "container does not exist",
            "cannot kill a container that is not running",
        ] {
            assert_eq!(classify(gone), ErrorKind::NotFound, "{gone}");
        }
        assert_eq!(
            classify("container with id exists: x"),
            ErrorKind::AlreadyExists
        );
        assert_eq!(classify("permission denied"), ErrorKind::Other);
    }
}
