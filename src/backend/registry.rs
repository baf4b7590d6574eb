//! The bookkeeping every backend keeps, written once: the tables of live sandboxes and
//! containers ([`Registry`]), a container's [`Status`] and how `wait` reads it
//! ([`Registry::wait`]), names made safe for paths and ids ([`sanitize`]).
//!
//! Rules:
//! - A container belongs to exactly one live sandbox: [`Registry::add_container`] refuses
//!   it once the sandbox is being removed, and removal takes the container out of both
//!   tables.
//! - Status only moves forward: `Created` → `Running` → a final status (`Exited`, `Failed`,
//!   `Removed`); [`Status::is_final`] is the one guard `wait` and removal use.
//! - The tables' lock is held only for map operations, never across an `.await`.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::{BackendError, ContainerId, ExitStatus, Result};
use crate::lock;

/// How long removal waits for a killed container to be reaped before giving up on it (a
/// process stuck in uninterruptible sleep); the backend still reaps it later.
pub(super) const KILL_WAIT: Duration = Duration::from_secs(10);

/// Where a container is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Status {
    Created,
    Running,
    Exited(ExitStatus),
    /// Never ran, or the backend lost track of it; the message says why.
    Failed(String),
    /// Removed before it exited.
    Removed,
}

impl Status {
    /// Exited, failed or removed: nothing will change any more.
    pub(super) fn is_final(&self) -> bool {
        match self {
            Status::Created | Status::Running => false,
            Status::Exited(_) | Status::Failed(_) | Status::Removed => true,
        }
    }
}

/// A container's status, observable by any number of waiters.
pub(super) type StatusCell = watch::Sender<Status>;

/// Wait for the container behind `rx` to reach a final status, as `Backend::wait` reports
/// it. The caller must not hold the container's entry while it waits: removing the
/// container drops the entry, and with it the status, which ends the wait with "removed".
async fn wait_exit(mut rx: watch::Receiver<Status>, id: &ContainerId) -> Result<ExitStatus> {
    let status = match rx.wait_for(Status::is_final).await {
        Ok(s) => s.clone(),
        Err(_) => Status::Removed,
    };
    match status {
        Status::Exited(st) => Ok(st),
        Status::Failed(msg) => Err(BackendError::other(msg)),
        // `Created` and `Running` cannot come out of `wait_for(is_final)`.
        Status::Removed | Status::Created | Status::Running => Err(BackendError::not_found(
            format!("container \"{id}\" was removed before it exited"),
        )),
    }
}

/// Move a still-`Created` container to `to`; `false` when it had already started.
pub(super) fn leave_created(status: &StatusCell, to: Status) -> bool {
    status.send_if_modified(|s| {
        let created = *s == Status::Created;
        if created {
            *s = to;
        }
        created
    })
}

/// Wait up to [`KILL_WAIT`] for a killed container to reach a final status; `false` (and a
/// warning) when it did not.
pub(super) async fn wait_killed(status: &StatusCell, name: &str) -> bool {
    let mut rx = status.subscribe();
    let done = tokio::time::timeout(KILL_WAIT, rx.wait_for(Status::is_final))
        .await
        .is_ok();
    if !done {
        tracing::warn!("container {name} was not reaped within {KILL_WAIT:?} of SIGKILL");
    }
    done
}

/// What the registry needs of a backend's container entry.
pub(super) trait Entry {
    /// The container's name in the pod spec, for messages.
    fn name(&self) -> &str;
    fn status(&self) -> &StatusCell;
}

/// A live sandbox: its directory, its containers' ids, and what else the backend keeps.
pub(super) struct SandboxEntry<S> {
    pub(super) dir: PathBuf,
    pub(super) containers: BTreeSet<String>,
    pub(super) extra: S,
}

/// The tables behind [`Registry`]'s lock.
pub(super) struct Tables<S, C> {
    pub(super) sandboxes: HashMap<String, SandboxEntry<S>>,
    pub(super) containers: HashMap<String, Arc<C>>,
}

/// Live sandboxes (with per-backend data `S`) and containers (entries `C`), by id.
pub(super) struct Registry<S, C> {
    tables: Mutex<Tables<S, C>>,
}

impl<S, C> Default for Registry<S, C> {
    fn default() -> Self {
        Registry {
            tables: Mutex::new(Tables {
                sandboxes: HashMap::new(),
                containers: HashMap::new(),
            }),
        }
    }
}

impl<S, C: Entry> Registry<S, C> {
    /// `Backend::wait`: the container's exit (see [`wait_exit`]).
    pub(super) async fn wait(&self, id: &ContainerId) -> Result<ExitStatus> {
        // The entry is not held while waiting, so that removing it ends the wait.
        let rx = self.container_or_err(id)?.status().subscribe();
        wait_exit(rx, id).await
    }

    /// A container that is running, for a native exec; `Err` when it is not (yet, or any
    /// more).
    pub(super) fn running(&self, id: &ContainerId) -> Result<Arc<C>> {
        let entry = self.container_or_err(id)?;
        if *entry.status().borrow() != Status::Running {
            return Err(BackendError::other(format!(
                "container \"{}\" is not running",
                entry.name()
            )));
        }
        Ok(entry)
    }
}

impl<S, C> Registry<S, C> {
    /// `(sandboxes, containers)`, for `Debug`.
    pub(super) fn counts(&self) -> (usize, usize) {
        let t = lock(&self.tables);
        (t.sandboxes.len(), t.containers.len())
    }

    pub(super) fn container(&self, id: &ContainerId) -> Option<Arc<C>> {
        lock(&self.tables).containers.get(&id.0).cloned()
    }

    pub(super) fn container_or_err(&self, id: &ContainerId) -> Result<Arc<C>> {
        self.container(id)
            .ok_or_else(|| BackendError::not_found(format!("container \"{id}\" not found")))
    }

    pub(super) fn add_sandbox(&self, id: String, dir: PathBuf, extra: S) {
        lock(&self.tables).sandboxes.insert(
            id,
            SandboxEntry {
                dir,
                containers: BTreeSet::new(),
                extra,
            },
        );
    }

    /// The directory of a live sandbox.
    pub(super) fn sandbox_dir(&self, id: &str) -> Result<PathBuf> {
        match lock(&self.tables).sandboxes.get(id) {
            Some(sb) => Ok(sb.dir.clone()),
            None => Err(BackendError::not_found(format!(
                "sandbox \"{id}\" not found"
            ))),
        }
    }

    /// The ids of a sandbox's containers; `None` for an unknown sandbox.
    pub(super) fn sandbox_containers(&self, id: &str) -> Option<Vec<String>> {
        let t = lock(&self.tables);
        Some(t.sandboxes.get(id)?.containers.iter().cloned().collect())
    }

    pub(super) fn remove_sandbox(&self, id: &str) -> Option<SandboxEntry<S>> {
        lock(&self.tables).sandboxes.remove(id)
    }

    /// Register a created container in its sandbox. `Err` (with the entry back, for the
    /// caller to undo) when the sandbox is gone: it was removed meanwhile.
    pub(super) fn add_container(
        &self,
        sandbox_id: &str,
        id: String,
        entry: Arc<C>,
    ) -> std::result::Result<ContainerId, Arc<C>> {
        let mut t = lock(&self.tables);
        match t.sandboxes.get_mut(sandbox_id) {
            Some(sb) => {
                sb.containers.insert(id.clone());
                t.containers.insert(id.clone(), entry);
                Ok(ContainerId(id))
            }
            None => Err(entry),
        }
    }

    /// Take a container out of the container table (the first step of removing it); `None`
    /// when it is unknown or already being removed.
    pub(super) fn take_container(&self, id: &str) -> Option<Arc<C>> {
        lock(&self.tables).containers.remove(id)
    }

    /// Drop a removed container from its sandbox's list (the last step of removing it).
    pub(super) fn forget_container(&self, sandbox_id: &str, id: &str) {
        if let Some(sb) = lock(&self.tables).sandboxes.get_mut(sandbox_id) {
            sb.containers.remove(id);
        }
    }

    /// Everything, for `Drop` (no lock needed: `&mut self`).
    pub(super) fn tables_mut(&mut self) -> &mut Tables<S, C> {
        self.tables.get_mut().unwrap_or_else(|e| e.into_inner())
    }
}

/// `name` made safe as one path component and as part of a runc container id
/// (`[A-Za-z0-9_.-]`): other characters become `_`, leading dots are dropped (no hidden
/// files, no `.`/`..`), and it is cut at 40 characters. One rule for every backend; 40
/// because runc ids become path components under runc's root and of `/run/netns` files, and
/// its state directory holds unix sockets whose paths are limited to 108 bytes. An empty
/// result is `_`. Ids stay unique through the suffix callers add (a sequence number or a
/// random tail), not through the name.
pub(super) fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .take(40)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    match s.trim_start_matches('.') {
        "" => "_".into(),
        t => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitized_names_are_safe_path_components_and_runc_ids() {
        assert_eq!(sanitize("web-0"), "web-0");
        assert_eq!(sanitize("a/b c"), "a_b_c");
        assert_eq!(sanitize(".."), "_");
        assert_eq!(sanitize(".hidden"), "hidden");
        assert_eq!(sanitize(""), "_");
        assert_eq!(sanitize(&"x".repeat(100)).len(), 40);
        assert_eq!(sanitize("é"), "_");
    }

    #[test]
    fn status_is_final_once_it_ended() {
        assert!(!Status::Created.is_final());
        assert!(!Status::Running.is_final());
        assert!(Status::Exited(ExitStatus::Exited(0)).is_final());
        assert!(Status::Failed("x".into()).is_final());
        assert!(Status::Removed.is_final());
    }
}
