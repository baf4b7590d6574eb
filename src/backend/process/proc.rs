//! Low-level process handling for the process backend: the spawner thread, spawning with
//! `PR_SET_PDEATHSIG` (through [`super::clone`]), exit notification without reaping, and
//! group-safe killing.

use crate::lock;
use std::cell::Cell;
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Mutex;
use std::time::Duration;

use rustix::io::Errno;
use rustix::process::{Pid, Signal, WaitId, WaitIdOptions, WaitOptions};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

use crate::backend::ExitStatus;

/// How long the spawner thread keeps reaping after the backend is dropped (its processes
/// have been SIGKILLed by then, so this is only the time for the kernel to finish them).
const SHUTDOWN_REAP_GRACE: Duration = Duration::from_secs(2);

thread_local! {
    static ON_SPAWNER_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// A dedicated thread running a current-thread tokio runtime. Every child of the backend is
/// started from this thread, because `PR_SET_PDEATHSIG` fires when the *thread* that created
/// the child exits, not the process: starting it from a tokio worker or blocking-pool thread
/// (which tokio retires after 10 s idle, or on runtime shutdown) would kill containers at
/// random. This thread lives exactly as long as the backend.
pub(super) struct Spawner {
    handle: Handle,
    shutdown: Option<oneshot::Sender<()>>,
    /// Cloned into every task that owns an unreaped child; the thread waits (bounded) for
    /// all clones to drop before it exits, so children are reaped even after the backend is
    /// dropped.
    live: mpsc::Sender<()>,
}

impl Spawner {
    pub(super) fn start() -> io::Result<Spawner> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("wasmhook-process-backend")
            .build()?;
        let handle = rt.handle().clone();
        let (shutdown, shutdown_rx) = oneshot::channel::<()>();
        let (live, mut live_rx) = mpsc::channel::<()>(1);
        std::thread::Builder::new()
            .name("wasmhook-process-backend".into())
            .spawn(move || {
                ON_SPAWNER_THREAD.with(|f| f.set(true));
                super::clone::reserve_stdio_slots();
                rt.block_on(async move {
                    // Either an explicit shutdown or the sender dropped: both mean the
                    // backend is gone.
                    let _ = shutdown_rx.await;
                    let _ = tokio::time::timeout(SHUTDOWN_REAP_GRACE, live_rx.recv()).await;
                });
                // Dropping `rt` cancels what is left (reapers of processes stuck in D state).
            })?;
        Ok(Spawner {
            handle,
            shutdown: Some(shutdown),
            live,
        })
    }

    /// Run `fut` on the spawner thread and wait for its result.
    pub(super) async fn run<T, F>(&self, fut: F) -> io::Result<T>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        self.handle
            .spawn(fut)
            .await
            .map_err(|e| io::Error::other(format!("process backend task failed: {e}")))
    }

    /// A token that keeps the spawner thread alive (for a bounded time after shutdown) while
    /// it is held.
    pub(super) fn live_token(&self) -> mpsc::Sender<()> {
        self.live.clone()
    }

    pub(super) fn shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub(super) use super::clone::SpawnSpec;

/// A spawned process that leads its own process group and that only this module reaps.
///
/// The group is signalled only while the leader is unreaped: a zombie leader keeps its pid,
/// and therefore the group id, from being reused, so `kill(-pgid)` can never hit an
/// unrelated group. [`Proc::finish`] kills the rest of the group and then reaps the leader,
/// under the same lock.
#[derive(Debug)]
pub(super) struct Proc {
    pid: Pid,
    reaped: Mutex<bool>,
}

/// The pipes of a spawned process (when captured) and its exit notifier.
pub(super) struct Spawned {
    pub proc: std::sync::Arc<Proc>,
    pub stdout: Option<tokio::process::ChildStdout>,
    pub stderr: Option<tokio::process::ChildStderr>,
    pub exit: ExitNotifier,
}

/// Spawn a process in its own process group with `PR_SET_PDEATHSIG = SIGKILL`, without
/// copying our address space (see [`super::clone`]).
/// Must run on the spawner thread (see [`Spawner`]).
pub(super) fn spawn(spec: &SpawnSpec<'_>) -> io::Result<Spawned> {
    if !ON_SPAWNER_THREAD.with(Cell::get) {
        return Err(io::Error::other(
            "internal error: process spawned outside the backend's spawner thread",
        ));
    }
    let started = super::clone::spawn(spec)?;
    let pid = started.pid;
    let proc = std::sync::Arc::new(Proc {
        pid,
        reaped: Mutex::new(false),
    });
    // From here on, any error must not leave the child unsupervised.
    let setup = (|| -> io::Result<_> {
        let stdout = started
            .stdout
            .map(|fd| tokio::process::ChildStdout::from_std(std::process::ChildStdout::from(fd)))
            .transpose()?;
        let stderr = started
            .stderr
            .map(|fd| tokio::process::ChildStderr::from_std(std::process::ChildStderr::from(fd)))
            .transpose()?;
        Ok((stdout, stderr))
    })();
    let exit = ExitNotifier::new(pid);
    match setup {
        Ok((stdout, stderr)) => Ok(Spawned {
            proc,
            stdout,
            stderr,
            exit,
        }),
        Err(e) => {
            let _ = proc.finish();
            Err(e)
        }
    }
}

impl Proc {
    pub(super) fn pid(&self) -> i32 {
        self.pid.as_raw_nonzero().get()
    }

    /// Send `sig` to the whole process group, if the leader has not been reaped yet.
    /// A group that is already gone counts as success.
    pub(super) fn signal_group(&self, sig: Signal) -> io::Result<()> {
        let reaped = lock(&self.reaped);
        if *reaped {
            return Ok(());
        }
        match rustix::process::kill_process_group(self.pid, sig) {
            Ok(()) | Err(Errno::SRCH) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// SIGKILL what is left of the group, then reap the leader. Blocks until the leader
    /// exits, so call it after the [`ExitNotifier`] fired (or after a SIGKILL).
    /// Returns `None` if it was already reaped.
    pub(super) fn finish(&self) -> Option<io::Result<ExitStatus>> {
        let mut reaped = lock(&self.reaped);
        if *reaped {
            return None;
        }
        // The leader is still at least a zombie here, so the group id is still ours.
        let _ = rustix::process::kill_process_group(self.pid, Signal::KILL);
        let res = loop {
            match rustix::process::waitpid(Some(self.pid), WaitOptions::empty()) {
                Ok(Some((_, st))) => {
                    break match (st.exit_status(), st.terminating_signal()) {
                        (Some(code), _) => Ok(ExitStatus::Exited(code)),
                        (None, Some(sig)) => Ok(ExitStatus::Signaled(sig)),
                        _ => Err(io::Error::other(format!("unexpected wait status {st:?}"))),
                    };
                }
                Ok(None) => continue,
                Err(Errno::INTR) => continue,
                Err(e) => break Err(io::Error::from(e)),
            }
        };
        *reaped = true;
        Some(res)
    }
}

/// Fires when a child exits, without reaping it (`waitid(WEXITED | WNOWAIT)`), so the
/// zombie keeps the process group id reserved until [`Proc::finish`].
pub(super) struct ExitNotifier {
    pid: Pid,
    /// A pidfd (Linux ≥ 5.3), polled through the reactor; `None` falls back to a blocking
    /// `waitid` on the blocking pool.
    pidfd: Option<OwnedFd>,
}

impl ExitNotifier {
    fn new(pid: Pid) -> Self {
        let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok();
        ExitNotifier { pid, pidfd }
    }

    pub(super) async fn exited(self) -> io::Result<()> {
        if let Some(fd) = self.pidfd {
            // SAFETY: an `OwnedFd` is a valid open descriptor that always returns the same
            // fd; the `AsyncFd` owns it and nothing replaces it.
            match unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) } {
                Ok(afd) => return wait_pidfd(afd).await,
                Err(e) => tracing::debug!("pidfd not pollable ({e}); waiting on a thread"),
            }
        }
        let pid = self.pid;
        tokio::task::spawn_blocking(move || loop {
            match rustix::process::waitid(
                WaitId::Pid(pid),
                WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
            ) {
                Ok(_) => return Ok(()),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(io::Error::from(e)),
            }
        })
        .await
        .map_err(io::Error::other)?
    }
}

async fn wait_pidfd(afd: AsyncFd<OwnedFd>) -> io::Result<()> {
    loop {
        let mut guard = afd.readable().await?;
        match rustix::process::waitid(
            WaitId::PidFd(afd.get_ref().as_fd()),
            WaitIdOptions::EXITED | WaitIdOptions::NOWAIT | WaitIdOptions::NOHANG,
        ) {
            Ok(Some(_)) => return Ok(()),
            Ok(None) => guard.clear_ready(),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// A raw signal number as a [`Signal`]: 1–31 and the real-time range up to 64.
pub(super) fn signal_from_raw(sig: i32) -> Option<Signal> {
    if let Some(s) = Signal::from_named_raw(sig) {
        return Some(s);
    }
    if (32..=64).contains(&sig) {
        // SAFETY: non-zero and a valid Linux signal number; it is only sent to other
        // processes, never used to change this process's own handlers or masks.
        return Some(unsafe { Signal::from_raw_unchecked(sig) });
    }
    None
}
