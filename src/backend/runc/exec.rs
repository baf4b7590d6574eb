//! Native exec (see "Native exec" in the module docs of [`super`]): `runc exec` with the
//! container's env and cwd, output captured, and a timeout enforced by the pid file.

use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::command::{runc_error, runc_failure};
use super::RuncBackend;
use crate::backend::output::{collect, spawn_capture};
use crate::backend::{check_exec_argv, BackendError, ContainerId, ErrorKind, ExecOutput, Result};

fn err(msg: impl Into<String>) -> BackendError {
    BackendError::other(msg)
}

impl RuncBackend {
    /// `Backend::exec`: `runc exec`, output captured, SIGKILL by pid file at the timeout.
    pub(super) async fn exec_in(
        &self,
        id: &ContainerId,
        argv: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput> {
        let entry = self.registry.running(id)?;
        check_exec_argv(argv)?;
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let pid_file = entry.bundle.join(format!("exec-{seq}.pid"));
        let log = entry.bundle.join(format!("exec-{seq}.log"));
        let mut child = self
            .runc_cmd()
            .arg("--log")
            .arg(&log)
            .args(["--log-format", "json", "exec", "--pid-file"])
            .arg(&pid_file)
            .arg(&entry.id)
            .args(argv)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| self.cannot_run(e))?;
        let out = spawn_capture(child.stdout.take());
        let errs = spawn_capture(child.stderr.take());
        let status = tokio::select! {
            s = child.wait() => Some(s),
            _ = tokio::time::sleep(timeout) => None,
        };
        let cleanup = |p: &Path, l: &Path| {
            let _ = std::fs::remove_file(p);
            let _ = std::fs::remove_file(l);
        };
        let Some(status) = status else {
            // The exec'd process is not runc's child: kill it by pid, then runc exits too.
            if let Some(pid) = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
                .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
            let _ = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
            let _ = child.start_kill();
            for h in [out, errs].into_iter().flatten() {
                h.abort();
            }
            cleanup(&pid_file, &log);
            return Err(BackendError::new(
                ErrorKind::DeadlineExceeded,
                "command timed out",
            ));
        };
        let status = status.map_err(|e| err(format!("exec: waiting for runc: {e}")))?;
        // A background process the command left may hold the pipes: stop reading soon.
        let stdout = collect(out).await;
        let stderr = collect(errs).await;
        let runc_failed = runc_error(&log, b"");
        cleanup(&pid_file, &log);
        if !runc_failed.is_empty() {
            return Err(runc_failure(&runc_failed, format!("exec: {runc_failed}")));
        }
        use std::os::unix::process::ExitStatusExt;
        let exit_code = match (status.code(), status.signal()) {
            (Some(c), _) => c,
            (None, Some(s)) => 128 + s,
            _ => 255,
        };
        Ok(ExecOutput {
            exit_code,
            stdout,
            stderr,
        })
    }
}
