//! Exit status: waiting for a container's init, which is not our child but reparented to
//! us (wasmhook is a child subreaper, see the module docs of [`super`]), through a pidfd.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use tokio::io::unix::AsyncFd;

use super::ContainerEntry;
use crate::backend::output::join_pumps;
use crate::backend::registry::Status;
use crate::backend::ExitStatus;

/// Wait for the container init to exit (pidfd readable), reap it, drain its output.
pub(super) async fn reap(
    entry: Arc<ContainerEntry>,
    pidfd: OwnedFd,
    mut pumps: Vec<tokio::task::JoinHandle<()>>,
) {
    use rustix::process::{waitid, WaitId, WaitIdOptions};
    // SAFETY: an `OwnedFd` is a valid open descriptor that stays the same until the
    // `AsyncFd` (its owner) is dropped.
    let registered =
        unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) };
    let status = match registered.map_err(|e| e.to_string()) {
        Err(e) => Status::Failed(format!("lost track of container \"{}\": {e}", entry.name)),
        Ok(afd) => loop {
            let mut guard = match afd.readable().await {
                Ok(g) => g,
                Err(e) => {
                    break Status::Failed(format!(
                        "lost track of container \"{}\": {e}",
                        entry.name
                    ))
                }
            };
            match waitid(
                WaitId::PidFd(afd.get_ref().as_fd()),
                WaitIdOptions::EXITED | WaitIdOptions::NOHANG,
            ) {
                Ok(Some(st)) => {
                    break match (st.exit_status(), st.terminating_signal()) {
                        (Some(c), _) => Status::Exited(ExitStatus::Exited(c)),
                        (None, Some(s)) => Status::Exited(ExitStatus::Signaled(s)),
                        _ => Status::Failed(format!(
                            "container \"{}\": unknown exit status",
                            entry.name
                        )),
                    }
                }
                Ok(None) => guard.clear_ready(),
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    break Status::Failed(format!(
                        "lost track of container \"{}\": waitid: {e} (is wasmhook a child \
                         subreaper?)",
                        entry.name
                    ))
                }
            }
        },
    };
    // Output of the last processes of the container: EOF comes when all of them are gone,
    // which the kernel ensures once the PID namespace's init is dead.
    join_pumps(&mut pumps).await;
    tracing::debug!("container {} ended: {status:?}", entry.id);
    entry.status.send_replace(status);
}
