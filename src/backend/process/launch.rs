//! Launching processes on the spawner thread (see "Lifetime and supervision" in the module
//! docs of [`super`]): a container's leader, with its exit watched and its output pumped,
//! and a native exec, with its output captured and its timeout enforced.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustix::process::Signal;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::oneshot;

use super::proc::{self, SpawnSpec};
use super::{err, ContainerEntry};
use crate::backend::output::{collect, join_pumps, pump_lines, spawn_capture};
use crate::backend::registry::Status;
use crate::backend::{BackendError, ErrorKind, ExecOutput, LogLine, LogStream, Result};
use crate::lock;

/// Runs on the spawner thread.
pub(super) fn start_on_spawner(
    entry: Arc<ContainerEntry>,
    logs: Option<UnboundedSender<LogLine>>,
    live: tokio::sync::mpsc::Sender<()>,
) -> Result<()> {
    let mut leader = lock(&entry.leader);
    match &*entry.status.borrow() {
        Status::Created => {}
        Status::Removed => return Err(err(format!("container \"{}\" was removed", entry.name))),
        _ => {
            return Err(err(format!(
                "container \"{}\" was already started",
                entry.name
            )))
        }
    }
    let spawned = proc::spawn(&SpawnSpec {
        program: &entry.program,
        argv: &entry.argv,
        env: &entry.env,
        cwd: &entry.cwd,
        capture: logs.is_some(),
    });
    let spawned = match spawned {
        Ok(s) => s,
        Err(e) => {
            let msg = format!(
                "failed to start container \"{}\": unable to start container process: exec: \
                 {:?}: {e}",
                entry.name, entry.argv[0]
            );
            entry.status.send_replace(Status::Failed(msg.clone()));
            return Err(err(msg));
        }
    };
    tracing::debug!(
        "container {} started as pid {}",
        entry.id,
        spawned.proc.pid()
    );
    *leader = Some(spawned.proc.clone());
    entry.status.send_replace(Status::Running);
    drop(leader);

    let mut readers = Vec::new();
    if let Some(tx) = logs {
        if let Some(out) = spawned.stdout {
            readers.push(tokio::spawn(pump_lines(
                out,
                tx.clone(),
                entry.pod.clone(),
                entry.name.clone(),
                LogStream::Stdout,
            )));
        }
        if let Some(errp) = spawned.stderr {
            readers.push(tokio::spawn(pump_lines(
                errp,
                tx,
                entry.pod.clone(),
                entry.name.clone(),
                LogStream::Stderr,
            )));
        }
    }
    let proc = spawned.proc;
    let exit = spawned.exit;
    tokio::spawn(async move {
        let _live = live;
        let notified = exit.exited().await;
        // Kills the rest of the group, then reaps the leader.
        let status = match proc.finish() {
            Some(Ok(st)) => Status::Exited(st),
            Some(Err(e)) => Status::Failed(format!(
                "lost track of container \"{}\": {e} ({notified:?})",
                entry.name
            )),
            None => Status::Failed(format!("container \"{}\" reaped twice", entry.name)),
        };
        join_pumps(&mut readers).await;
        tracing::debug!("container {} ended: {status:?}", entry.id);
        entry.status.send_replace(status);
    });
    Ok(())
}

/// Runs on the spawner thread.
pub(super) async fn exec_on_spawner(
    entry: Arc<ContainerEntry>,
    program: PathBuf,
    argv: Vec<String>,
    timeout: Duration,
    mut cancelled: oneshot::Receiver<()>,
    live: tokio::sync::mpsc::Sender<()>,
) -> Result<ExecOutput> {
    let _live = live;
    let spawned = proc::spawn(&SpawnSpec {
        program: &program,
        argv: &argv,
        env: &entry.env,
        cwd: &entry.cwd,
        capture: true,
    })
    .map_err(|e| err(format!("exec: {:?}: {e}", argv[0])))?;
    let proc = spawned.proc;
    lock(&entry.execs).push(proc.clone());
    let out = spawn_capture(spawned.stdout);
    let errs = spawn_capture(spawned.stderr);
    let exited = spawned.exit.exited();
    tokio::pin!(exited);
    let outcome = tokio::select! {
        _ = &mut exited => None,
        _ = tokio::time::sleep(timeout) => Some(BackendError::new(ErrorKind::DeadlineExceeded, "command timed out")),
        _ = &mut cancelled => Some(err("exec cancelled")),
    };
    if outcome.is_some() {
        let _ = proc.signal_group(Signal::KILL);
        let _ = exited.await;
    }
    let status = proc.finish();
    lock(&entry.execs).retain(|p| !Arc::ptr_eq(p, &proc));
    let stdout = collect(out).await;
    let stderr = collect(errs).await;
    if let Some(e) = outcome {
        return Err(e);
    }
    let exit_code = match status {
        Some(Ok(st)) => st.code(),
        Some(Err(e)) => return Err(err(format!("exec: waiting for {:?}: {e}", argv[0]))),
        None => return Err(err(format!("exec: {:?} reaped twice", argv[0]))),
    };
    Ok(ExecOutput {
        exit_code,
        stdout,
        stderr,
    })
}
