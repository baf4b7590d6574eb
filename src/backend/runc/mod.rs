//! The runc backend: containers run by the `runc` OCI runtime, driven the way containerd's
//! runc shim drives it (`runc create` / `start` / `kill` / `delete`), with images from a
//! local directory or pulled from registries. Needs root and `runc` (and `ip` from
//! iproute2) on the host.
//!
//! # Sandbox (pod)
//! - A directory `<state_dir>/sandboxes/<pod>-XXXXXX`; its name is the sandbox id. emptyDir
//!   volume `<name>` is `<sandbox dir>/volumes/<name>` (the same host directory the wasm
//!   hooks preopen); hostPath volumes are the host path, which must exist.
//! - A network namespace per pod, `ip netns add wasmhook-<sandbox id>` (a bind-mounted nsfs
//!   file under `/run/netns`) with `lo` up. Every container of the pod joins it (its
//!   `linux.namespaces` network entry has that `path`), so containers reach each other on
//!   `127.0.0.1` as in Kubernetes. There is no other interface: the pod is reachable only
//!   from inside. [`Sandbox::address`] is `127.0.0.1` and [`Sandbox::netns`] the namespace
//!   file, so httpGet/tcpSocket hooks connect from inside the namespace
//!   ([`crate::handlers::tcp`] creates the socket on a thread that entered it).
//!
//! # Container
//! - `image` is resolved in the images directory ([`image`]), else among the pulled images
//!   ([`pull`]; the engine pulls before it creates, see [`Backend::image_presence`]); OCI
//!   layouts and pulled images are unpacked once per manifest digest into
//!   `<state_dir>/images`, shared by every pod. The container's rootfs is an overlay
//!   (lower: the image, upper: the bundle) mounted at `<bundle>/rootfs`, or a copy of the
//!   image when overlayfs is unavailable, so containers never change the image.
//! - argv: `command` + `args` as the engine built it, or, when empty, the image's
//!   `Entrypoint` + `Cmd`. (The engine merges `command` and `args`, so `args` alone does not
//!   keep the image's entrypoint, unlike Kubernetes.) env: the image's `Env`, then the
//!   spec's (later wins). Working dir: `workingDir`, else the image's, else `/`. User root.
//! - Namespaces: pid, ipc, uts (hostname: the pod name), mount, and the pod's network
//!   namespace. Volume mounts are `rbind` (`ro` when `readOnly`). Memory and CPU limits go
//!   to `linux.resources` when the host has the cgroup controllers (v2, or v1 memory + cpu);
//!   otherwise they are skipped with a warning.
//! - Lifecycle: `runc --root <state_dir>/runc create --bundle <bundle> --pid-file ...`,
//!   `start`, `kill <id> <signal>`, `delete --force`. `signal` goes to the container's init
//!   (as CRI does); when it dies the kernel kills the rest of its PID namespace.
//!
//! # Exit status: wasmhook is a child subreaper
//! `runc create` forks the container init and exits, so the init is not our child. As
//! containerd's shim does, the backend makes the wasmhook process a child subreaper
//! (`PR_SET_CHILD_SUBREAPER`, process-wide, set when the backend is created): the kernel
//! reparents the orphaned init to us. Its pid (from `--pid-file`) is opened as a pidfd at
//! once (a zombie child keeps its pid, so it cannot be recycled under us), the pidfd's
//! readiness is awaited on tokio, and `waitid(P_PIDFD)` reaps it and gives the real exit
//! code or signal. Polling `runc state` would lose the exit code. Side effect: any other
//! descendant of wasmhook orphaned while it runs is reparented to it and stays a zombie
//! until wasmhook exits (nothing calls `wait(-1)`, which would steal tokio's children).
//!
//! # Output
//! Non-terminal mode: the container inherits the stdio of `runc create`, which are pipes
//! (stdin `/dev/null`); they are read line by line into [`LogLine`]s until EOF (the last
//! process of the container holding them exits). runc's own messages go to
//! `<bundle>/runc.log` (JSON) and become the error text when a command fails.
//!
//! # Removal
//! `remove_container`, `remove_sandbox` and `Drop` all run `runc delete --force` (kills the
//! container, removes its runc state and cgroup), unmount the rootfs overlay, and delete
//! the bundle; `remove_sandbox` and `Drop` also delete the network namespace and the
//! sandbox directory. If wasmhook itself is SIGKILLed, containers survive (the init's
//! parent-death signal is runc's to reset); `runc --root <state_dir>/runc list` shows them.
//! So each sandbox directory holds an `owner` file (wasmhook's pid and its start time,
//! field 22 of `/proc/<pid>/stat`), and the first `create_sandbox` of a backend sweeps the
//! sandboxes under `<state_dir>/sandboxes` whose owner is gone (or whose pid now has another
//! start time), as containerd does after a crash: `runc delete --force` for each container
//! in `<sandbox dir>/containers`, unmount its rootfs, delete the `wasmhook-<sandbox id>`
//! netns and the directory, and log it. Directories without an owner file are left alone.
//!
//! # Native exec
//! `runc exec --pid-file ... <id> argv...`: the container's env and cwd, stdout and stderr
//! captured (16 MiB each, the rest discarded). At the timeout the exec'd process is SIGKILLed
//! (by its pid file) and the error is `command timed out`. runc's own failure (no such
//! executable, container stopped) is an error with runc's message.

mod command;
mod create;
mod exec;
pub mod image;
mod netns;
pub mod pull;
mod reap;
mod rootfs;
pub mod spec;
mod sweep;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc::UnboundedSender;

pub use self::command::available;
use self::command::{runc_error, runc_failure};
use self::rootfs::{cgroup_limits_available, remove_bundle};
pub use super::output::EXEC_OUTPUT_LIMIT;
use super::registry::{sanitize, wait_killed, Entry, Registry, Status, StatusCell};
use super::*;

/// Default state directory (a tmpfs on most hosts, like `/run/containerd`).
pub const DEFAULT_STATE_DIR: &str = "/run/wasmhook";

/// Configuration of a [`RuncBackend`]. Every field has a default.
#[derive(Clone, Debug, Default)]
pub struct RuncBackendConfig {
    /// The local image store (`--images`). Default: `None`, every `image:` is "not found".
    pub images_dir: Option<PathBuf>,
    /// Bundles, sandboxes, the image cache and runc's `--root`. Default [`DEFAULT_STATE_DIR`].
    pub state_dir: Option<PathBuf>,
    /// The runc binary. Default `runc` (through `PATH`).
    pub runc: Option<PathBuf>,
    /// Where container output goes, line by line. Default: `None`, output is discarded.
    pub logs: Option<UnboundedSender<LogLine>>,
    /// Registries (`HOST[:PORT]`, as references name them) spoken to in plain HTTP
    /// (`--insecure-registry`). Default: none, every registry is HTTPS.
    pub insecure_registries: Vec<String>,
    /// Where pull progress goes. Default: `None`, not reported.
    pub pull_progress: Option<pull::ProgressSink>,
}

/// Runs containers with runc. See the module docs.
pub struct RuncBackend {
    config: RuncBackendConfig,
    state_dir: PathBuf,
    runc: PathBuf,
    /// `None` until checked; whether cgroup limits can be applied.
    cgroups: Option<bool>,
    subreaper: std::result::Result<(), String>,
    /// Live sandboxes (with their netns name) and containers.
    registry: Registry<String, ContainerEntry>,
    seq: AtomicU64,
    /// Whether stale sandboxes have been swept (on the first `create_sandbox`).
    swept: AtomicBool,
    /// Registry pulls into the image cache.
    puller: pull::Puller,
}

struct ContainerEntry {
    /// runc's container id.
    id: String,
    name: String,
    sandbox_id: String,
    bundle: PathBuf,
    /// Whether `<bundle>/rootfs` is an overlay mount to undo.
    overlay: bool,
    /// The init's pid (held by its pidfd: not recycled while the entry lives).
    pid: i32,
    /// The working directory and `PATH` of the container's processes.
    cwd: String,
    path: Option<String>,
    status: StatusCell,
}

impl Entry for ContainerEntry {
    fn name(&self) -> &str {
        &self.name
    }

    fn status(&self) -> &StatusCell {
        &self.status
    }
}

fn err(msg: impl Into<String>) -> BackendError {
    BackendError::other(msg)
}

impl fmt::Debug for RuncBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (sandboxes, containers) = self.registry.counts();
        f.debug_struct("RuncBackend")
            .field("state_dir", &self.state_dir)
            .field("sandboxes", &sandboxes)
            .field("containers", &containers)
            .finish()
    }
}

impl RuncBackend {
    /// Makes this process a child subreaper (see the module docs).
    pub fn new(config: RuncBackendConfig) -> Self {
        let state_dir = config
            .state_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
        let state_dir = std::path::absolute(&state_dir).unwrap_or(state_dir);
        let runc = config.runc.clone().unwrap_or_else(|| PathBuf::from("runc"));
        let subreaper = rustix::process::set_child_subreaper(rustix::process::Pid::from_raw(1))
            .map_err(|e| format!("cannot become a child subreaper: {e}"));
        let puller = pull::Puller::new(
            &config.insecure_registries,
            state_dir.join("images"),
            config.pull_progress.clone(),
        );
        RuncBackend {
            puller,
            config,
            state_dir,
            runc,
            cgroups: None,
            subreaper,
            registry: Registry::default(),
            seq: AtomicU64::new(0),
            swept: AtomicBool::new(false),
        }
    }

    /// runc's `--root`: its state for our containers (`runc --root <this> list`).
    pub fn runc_root(&self) -> PathBuf {
        self.state_dir.join("runc")
    }

    fn cgroups_ok(&self) -> bool {
        self.cgroups.unwrap_or_else(cgroup_limits_available)
    }

    /// `runc delete --force`, wait for the reaping, unmount and delete the bundle.
    async fn remove_entry(&self, id: &str) {
        let Some(entry) = self.registry.take_container(id) else {
            return;
        };
        match self.run_runc(&["delete", "--force", &entry.id]).await {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                tracing::warn!("runc delete {}: {e}", entry.id)
            }
            _ => {}
        }
        if *entry.status.borrow() != Status::Created {
            wait_killed(&entry.status, &entry.name).await;
        }
        entry.status.send_if_modified(|s| {
            let open = !s.is_final();
            if open {
                *s = Status::Removed;
            }
            open
        });
        self.registry.forget_container(&entry.sandbox_id, id);
        let (bundle, overlay) = (entry.bundle.clone(), entry.overlay);
        let _ = tokio::task::spawn_blocking(move || remove_bundle(&bundle, overlay)).await;
    }
}

impl Drop for RuncBackend {
    fn drop(&mut self) {
        let st = self.registry.tables_mut();
        let containers = std::mem::take(&mut st.containers);
        let sandboxes = std::mem::take(&mut st.sandboxes);
        for c in containers.values() {
            self.delete_blocking(&c.id);
            remove_bundle(&c.bundle, c.overlay);
        }
        for sb in sandboxes.values() {
            netns::delete_blocking(&sb.extra);
            let _ = std::fs::remove_dir_all(&sb.dir);
        }
    }
}

#[async_trait]
impl Backend for RuncBackend {
    fn name(&self) -> &'static str {
        "runc"
    }

    async fn create_sandbox(&self, spec: &SandboxSpec) -> Result<Sandbox> {
        if !self.swept.swap(true, Ordering::Relaxed) {
            self.sweep().await;
        }
        let parent = self.state_dir.join("sandboxes");
        std::fs::create_dir_all(&parent)
            .map_err(|e| err(format!("creating {}: {e}", parent.display())))?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}-", sanitize(&spec.pod.name)))
            .tempdir_in(&parent)
            .map_err(|e| err(format!("creating a sandbox in {}: {e}", parent.display())))?;
        owner::write(dir.path()).map_err(|e| {
            err(format!(
                "writing the owner file in {}: {e}",
                dir.path().display()
            ))
        })?;
        let id = dir
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let volumes = volumes::make(dir.path(), &spec.volumes)?;
        let netns = netns::name(&id);
        netns::add(&netns).await?;
        let dir = dir.keep();
        self.registry.add_sandbox(id.clone(), dir, netns.clone());
        Ok(Sandbox {
            id,
            pod: spec.pod.clone(),
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            volumes,
            netns: Some(netns::path(&netns)),
        })
    }

    async fn remove_sandbox(&self, sandbox: &Sandbox) -> Result<()> {
        let Some(ids) = self.registry.sandbox_containers(&sandbox.id) else {
            return Ok(());
        };
        for id in ids {
            self.remove_entry(&id).await;
        }
        let Some(sb) = self.registry.remove_sandbox(&sandbox.id) else {
            return Ok(());
        };
        if let Err(e) = netns::delete(&sb.extra).await {
            tracing::warn!("{e}");
        }
        let dir = sb.dir;
        let shown = dir.display().to_string();
        match tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&dir)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Ok(Err(e)) => Err(err(format!("removing {shown}: {e}"))),
            Err(e) => Err(err(format!("removing {shown}: {e}"))),
        }
    }

    async fn create_container(
        &self,
        sandbox: &Sandbox,
        spec: &ContainerSpec,
    ) -> Result<ContainerId> {
        self.create(sandbox, spec).await
    }

    async fn image_presence(&self, image: &str) -> Result<ImagePresence> {
        self.presence(image).await
    }

    async fn pull_image(&self, image: &str) -> Result<PulledImage> {
        self.puller.pull(image).await
    }

    async fn start_container(&self, id: &ContainerId) -> Result<()> {
        let entry = self.registry.container_or_err(id)?;
        if *entry.status.borrow() != Status::Created {
            return Err(err(format!(
                "container \"{}\" was already started",
                entry.name
            )));
        }
        let log = entry.bundle.join("runc.log");
        let out = self
            .runc_cmd()
            .arg("--log")
            .arg(&log)
            .args(["--log-format", "json", "start", &entry.id])
            .output()
            .await
            .map_err(|e| self.cannot_run(e))?;
        if !out.status.success() {
            let runc = runc_error(&log, &out.stderr);
            return Err(runc_failure(
                &runc,
                format!("failed to start container \"{}\": {runc}", entry.name),
            ));
        }
        entry.status.send_if_modified(|s| {
            let created = *s == Status::Created;
            if created {
                *s = Status::Running;
            }
            created
        });
        Ok(())
    }

    async fn signal(&self, id: &ContainerId, signal: i32) -> Result<()> {
        if !(1..=64).contains(&signal) {
            return Err(err(format!("invalid signal number {signal}")));
        }
        let Some(entry) = self.registry.container(id) else {
            return Ok(());
        };
        if entry.status.borrow().is_final() {
            return Ok(());
        }
        match self
            .run_runc(&["kill", &entry.id, &signal.to_string()])
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::Unavailable => Err(e),
            // Gone, or it exited while runc ran: what `signal` promises for an exited one.
            Err(e) if e.kind() == ErrorKind::NotFound || entry.status.borrow().is_final() => Ok(()),
            Err(e) => Err(e.context(format_args!("signalling container \"{}\"", entry.name))),
        }
    }

    async fn wait(&self, id: &ContainerId) -> Result<ExitStatus> {
        self.registry.wait(id).await
    }

    async fn remove_container(&self, id: &ContainerId) -> Result<()> {
        self.remove_entry(&id.0).await;
        Ok(())
    }

    fn command_root(&self, id: &ContainerId) -> Option<CommandRoot> {
        let entry = self.registry.running(id).ok()?;
        Some(CommandRoot {
            root: PathBuf::from(format!("/proc/{}/root", entry.pid)),
            cwd: entry.cwd.clone(),
            path: entry.path.clone(),
        })
    }

    async fn exec(
        &self,
        id: &ContainerId,
        argv: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput> {
        self.exec_in(id, argv, timeout).await
    }
}
