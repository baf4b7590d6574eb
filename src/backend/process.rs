//! The process backend: containers as host process groups. The embedded default: no root,
//! nothing to install, no images.
//!
//! # Sandbox (pod)
//! - The pod shares the host network; its address is `127.0.0.1`. Two pods listening on
//!   the same port conflict, as two host processes would.
//! - Each sandbox owns a directory: `<state_dir>/wasmhook-<pod>-XXXXXX`, or, without a
//!   `state_dir`, a fresh directory of that name under `$TMPDIR`. `remove_sandbox` kills
//!   what still runs in the pod and deletes the directory. Dropping the backend does the
//!   same, best effort.
//! - The sandbox directory holds an `owner` file: wasmhook's pid and its start time (field 22
//!   of `/proc/<pid>/stat`). A SIGKILLed wasmhook cannot delete its directories, so the
//!   first `create_sandbox` of a backend sweeps them: every `wasmhook-*` directory in the
//!   same parent whose owner process is gone (or whose pid now has another start time) is
//!   deleted, and logged. Directories without an owner file are never touched.
//! - `emptyDir` volume `<name>` is the directory `<sandbox dir>/volumes/<name>`, created
//!   with the sandbox and deleted with it.
//! - `hostPath` volumes are the host path as is (made absolute). It must exist (an error
//!   otherwise); it is never created or deleted.
//!
//! # Container
//! - There is no image: `image` is ignored and `argv` (`command` + `args`) must be given
//!   ("no command specified" otherwise). `argv[0]` is resolved at create time: a name
//!   without `/` through the container's `PATH` (when the spec sets one), else the host's
//!   `PATH` followed by the default `PATH` below; a relative path against the working dir.
//!   "executable file not found in $PATH" is a create error.
//! - The container is one process group: `argv` runs as its leader (`setpgid(0, 0)`),
//!   with stdin `/dev/null`. Signals go to the whole group. When the leader exits, the rest
//!   of the group is SIGKILLed at once, as the kernel does when the PID 1 of a container's
//!   PID namespace exits. Processes that leave the group (`setsid`, daemons) escape it:
//!   there are no cgroups here.
//! - Environment: exactly the spec's `env` (later duplicates win) plus `WASMHOOK_ROOT`
//!   (below); nothing is inherited from wasmhook. Without a `PATH` in the spec, `PATH` is
//!   `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`, as container runtimes
//!   set it.
//! - Signals: every disposition at its default and none blocked, whatever wasmhook was
//!   started with (a shell's background job ignores SIGINT and SIGQUIT, and a container that
//!   inherited that would sit out its `stopSignal` until the grace period's SIGKILL).
//! - Output: stdout and stderr are read line by line, to EOF (so the last lines before a
//!   crash and a final line without newline are kept), into [`LogLine`]s on the configured
//!   channel; lines longer than 16 KiB are split. Without a channel, output goes to
//!   `/dev/null`. Either way a container never blocks on its output.
//! - `memory_limit` and `cpu_limit_millis` are not enforced; `readOnly` mounts are not
//!   enforced either.
//!
//! # How a container finds its volumes
//! There is no filesystem isolation, so mount paths cannot be the real `/var/log` etc.
//! Instead every container gets its own *root* directory, `WASMHOOK_ROOT`:
//! - each volume mount appears in it as a symlink at the mount path, made relative to the
//!   root: mount `/var/log` is `$WASMHOOK_ROOT/var/log` → the volume's host directory;
//! - the environment variable `WASMHOOK_ROOT` holds its absolute path;
//! - it is the working directory when the spec sets no `workingDir`, so relative paths
//!   work too: `sh -c 'date >> $WASMHOOK_ROOT/var/log/index.html'` or
//!   `sh -c 'date >> var/log/index.html'` write into the pod's volume;
//! - a `workingDir` under a mount path is translated to the volume's host directory
//!   (`/var/log/app` → `<volume>/app`); any other `workingDir` is a host path as is. It
//!   must exist.
//!
//! Nested mounts (one mount path inside another) cannot be represented by symlinks without
//! writing into the outer volume, so they are a create error. The root is deleted by
//! `remove_container`.
//!
//! # Lifetime and supervision
//! Every child (containers and execs) is started from one dedicated thread owned by the
//! backend, with `PR_SET_PDEATHSIG = SIGKILL`: Linux sends the signal when the *thread*
//! that created the child exits, so starting children from a tokio worker or blocking-pool
//! thread (which tokio retires when idle or at runtime shutdown) would kill containers at
//! random.
//! Children are created with `clone(CLONE_VM | CLONE_VFORK)` rather than `fork`, so
//! starting one costs the same with 5 or 5000 containers running ([`clone`]).
//! The dedicated thread lives exactly as long as the backend, so container leaders die when
//! wasmhook dies (even by SIGKILL) or when the backend is dropped. Grandchildren do not
//! inherit the death signal (nor does a set-user-ID program, for which the kernel clears
//! it), so if wasmhook is SIGKILLed they are orphaned; dropping the backend, by contrast,
//! SIGKILLs every container's whole group and deletes the sandbox directories.
//!
//! Only the backend reaps its children: a leader is reaped right after it exits (no
//! zombies once `wait` has returned), and its group is signalled only while the leader is
//! still unreaped, so a recycled process group id can never be hit.
//!
//! # Native exec
//! `exec` runs `argv` with the container's environment and working directory as a process
//! group of its own, with stdout and stderr captured (16 MiB each, the rest discarded).
//! When the command exits, what it left in its group is SIGKILLed; at the timeout the whole
//! group is SIGKILLed and the error is `command timed out`.

mod clone;
mod launch;
mod proc;
mod root;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use rustix::process::Signal;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::oneshot;

use self::launch::{exec_on_spawner, start_on_spawner};
use self::proc::{Proc, Spawner};
use self::root::{
    force_remove_dir_all, make_root, plan_mounts, remove_dir_blocking, resolve_program,
    translate_path,
};
pub use super::output::EXEC_OUTPUT_LIMIT;
use super::registry::{leave_created, sanitize, wait_killed, Entry, Registry, Status, StatusCell};
use super::*;
use crate::lock;

/// `PATH` of a container whose spec sets none (the value container runtimes use).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The environment variable holding a container's root directory (see the module docs).
pub const ROOT_ENV: &str = "WASMHOOK_ROOT";

/// Configuration of a [`ProcessBackend`].
#[derive(Clone, Debug, Default)]
pub struct ProcessBackendConfig {
    /// Where per-pod directories (emptyDir volumes, container roots) go; created if missing.
    /// Default: `None`, a fresh `wasmhook-<pod>-XXXXXX` directory under `$TMPDIR` per pod.
    pub state_dir: Option<PathBuf>,
    /// Where container output goes, line by line. Default: `None`, output is discarded.
    pub logs: Option<UnboundedSender<LogLine>>,
}

/// Runs each container as a host process group; the embedded default. See the module docs.
pub struct ProcessBackend {
    config: ProcessBackendConfig,
    /// Started on first use, so constructing a backend is infallible and cheap.
    spawner: OnceLock<Result<Spawner, String>>,
    /// Live sandboxes (no data besides the shared) and containers.
    registry: Registry<(), ContainerEntry>,
    seq: AtomicU64,
    /// Whether stale sandboxes have been swept (on the first `create_sandbox`).
    swept: AtomicBool,
}

struct ContainerEntry {
    id: String,
    name: String,
    pod: String,
    sandbox_id: String,
    program: PathBuf,
    argv: Vec<String>,
    env: Vec<(String, String)>,
    cwd: PathBuf,
    root: PathBuf,
    status: StatusCell,
    /// The leader once started. Status changes from `Created` happen under this lock.
    leader: Mutex<Option<Arc<Proc>>>,
    /// Native execs in flight, killed with the container.
    execs: Mutex<Vec<Arc<Proc>>>,
}

impl Entry for ContainerEntry {
    fn name(&self) -> &str {
        &self.name
    }

    fn status(&self) -> &StatusCell {
        &self.status
    }
}

impl ContainerEntry {
    /// SIGKILL the container's group and its execs' groups (no-ops once reaped).
    fn kill_all(&self) {
        if let Some(p) = lock(&self.leader).as_ref() {
            let _ = p.signal_group(Signal::KILL);
        }
        for p in lock(&self.execs).iter() {
            let _ = p.signal_group(Signal::KILL);
        }
    }
}

impl Default for ProcessBackend {
    fn default() -> Self {
        Self::new(ProcessBackendConfig::default())
    }
}

impl fmt::Debug for ProcessBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (sandboxes, containers) = self.registry.counts();
        f.debug_struct("ProcessBackend")
            .field("config", &self.config)
            .field("sandboxes", &sandboxes)
            .field("containers", &containers)
            .finish()
    }
}

fn err(msg: impl Into<String>) -> BackendError {
    BackendError::other(msg)
}

impl ProcessBackend {
    pub fn new(config: ProcessBackendConfig) -> Self {
        ProcessBackend {
            config,
            spawner: OnceLock::new(),
            registry: Registry::default(),
            seq: AtomicU64::new(0),
            swept: AtomicBool::new(false),
        }
    }

    /// Delete the `wasmhook-*` sandbox directories in `parent` whose owner process is gone
    /// (left by a SIGKILLed wasmhook; see the module docs).
    fn sweep(parent: &Path) {
        for (dir, why) in super::owner::stale_dirs(parent, "wasmhook-") {
            match force_remove_dir_all(&dir) {
                Ok(()) => tracing::info!("swept stale sandbox {} ({why})", dir.display()),
                Err(e) => tracing::warn!("sweeping stale sandbox {}: {e}", dir.display()),
            }
        }
    }

    fn spawner(&self) -> Result<&Spawner> {
        self.spawner
            .get_or_init(|| {
                Spawner::start().map_err(|e| format!("cannot start the process backend: {e}"))
            })
            .as_ref()
            .map_err(|e| BackendError::unavailable(e.clone()))
    }

    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Kill, wait for and forget a container; delete its root. Unknown ids are a no-op.
    async fn remove_entry(&self, id: &str) {
        let Some(entry) = self.registry.take_container(id) else {
            return;
        };
        {
            // Under the leader's lock: a start in flight either ran (and is killed here)
            // or sees `Removed` and does not run.
            let _leader = lock(&entry.leader);
            leave_created(&entry.status, Status::Removed);
        }
        entry.kill_all();
        wait_killed(&entry.status, &entry.name).await;
        self.registry.forget_container(&entry.sandbox_id, id);
        remove_dir_blocking(entry.root.clone()).await;
    }
}

impl Drop for ProcessBackend {
    fn drop(&mut self) {
        let st = self.registry.tables_mut();
        for c in st.containers.values() {
            c.kill_all();
        }
        for sb in st.sandboxes.values() {
            if let Err(e) = force_remove_dir_all(&sb.dir) {
                tracing::warn!("removing {}: {e}", sb.dir.display());
            }
        }
        if let Some(Ok(spawner)) = self.spawner.get_mut() {
            spawner.shutdown();
        }
    }
}

#[async_trait]
impl Backend for ProcessBackend {
    fn name(&self) -> &'static str {
        "process"
    }

    async fn create_sandbox(&self, spec: &SandboxSpec) -> Result<Sandbox> {
        let pod_label = sanitize(&spec.pod.name);
        let prefix = format!("wasmhook-{pod_label}-");
        let parent = match &self.config.state_dir {
            Some(d) => d.clone(),
            None => std::env::temp_dir(),
        };
        let parent = std::path::absolute(&parent)
            .map_err(|e| err(format!("state directory {}: {e}", parent.display())))?;
        std::fs::create_dir_all(&parent).map_err(|e| {
            err(format!(
                "creating state directory {}: {e}",
                parent.display()
            ))
        })?;
        if !self.swept.swap(true, Ordering::Relaxed) {
            Self::sweep(&parent);
        }
        // A `TempDir` until the end, so every error path below deletes it.
        let dir = tempfile::Builder::new()
            .prefix(&prefix)
            .tempdir_in(&parent)
            .map_err(|e| {
                err(format!(
                    "creating sandbox directory in {}: {e}",
                    parent.display()
                ))
            })?;
        super::owner::write(dir.path()).map_err(|e| {
            err(format!(
                "writing the owner file in {}: {e}",
                dir.path().display()
            ))
        })?;
        let volumes = volumes::make(dir.path(), &spec.volumes)?;
        let dir = dir.keep();
        let id = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("{prefix}{}", self.next_seq()));
        self.registry.add_sandbox(id.clone(), dir, ());
        Ok(Sandbox {
            id,
            pod: spec.pod.clone(),
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            volumes,
            netns: None,
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
        // Containers created while we were removing the others.
        for id in &sb.containers {
            self.remove_entry(id).await;
        }
        let dir = sb.dir.clone();
        tokio::task::spawn_blocking(move || force_remove_dir_all(&dir))
            .await
            .map_err(|e| err(format!("removing {}: {e}", sb.dir.display())))?
            .map_err(|e| {
                err(format!(
                    "removing sandbox directory {}: {e}",
                    sb.dir.display()
                ))
            })
    }

    async fn create_container(
        &self,
        sandbox: &Sandbox,
        spec: &ContainerSpec,
    ) -> Result<ContainerId> {
        let sandbox_dir = self.registry.sandbox_dir(&sandbox.id)?;
        let fail = |msg: String| {
            err(format!(
                "failed to create container \"{}\": {msg}",
                spec.name
            ))
        };
        if spec.argv.is_empty() {
            return Err(fail(
                "unable to start container process: exec: no command specified (the process \
                 backend runs no image entrypoint, so the container needs a command)"
                    .into(),
            ));
        }
        if spec.argv.iter().any(|a| a.contains('\0')) {
            return Err(fail("command or args contain a NUL byte".into()));
        }
        if spec.argv[0].is_empty() {
            return Err(fail(
                "unable to start container process: exec: \"\": empty command".into(),
            ));
        }
        if spec.image.is_some() || spec.memory_limit.is_some() || spec.cpu_limit_millis.is_some() {
            tracing::debug!(
                "process backend: container {} runs on the host; image and resource limits \
                 are not applied",
                spec.name
            );
        }
        let seq = self.next_seq();
        let id = format!("{}.{}.{seq}", sandbox.id, spec.name);
        let root = sandbox_dir
            .join("containers")
            .join(format!("{}.{seq}", sanitize(&spec.name)));

        let mut env: Vec<(String, String)> = Vec::new();
        for (k, v) in &spec.env {
            if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
                return Err(fail(format!("invalid environment variable {k:?}")));
            }
            match env.iter_mut().find(|(ek, _)| ek == k) {
                Some(e) => e.1 = v.clone(),
                None => env.push((k.clone(), v.clone())),
            }
        }
        let spec_path = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone());
        if spec_path.is_none() {
            env.push(("PATH".into(), DEFAULT_PATH.into()));
        }
        env.retain(|(k, _)| k != ROOT_ENV);
        env.push((ROOT_ENV.into(), root.to_string_lossy().into_owned()));

        let links = plan_mounts(&spec.mounts).map_err(fail)?;
        let cwd = match &spec.working_dir {
            None => root.clone(),
            Some(wd) => translate_path(wd, &spec.mounts),
        };
        let made = make_root(&root, &links).and_then(|()| {
            if !cwd.is_dir() {
                let wd = spec.working_dir.as_deref().unwrap_or(&cwd);
                return Err(format!(
                    "working directory \"{}\" does not exist or is not a directory",
                    wd.display()
                ));
            }
            let search = match &spec_path {
                Some(p) => p.clone(),
                None => {
                    let host = std::env::var("PATH").unwrap_or_default();
                    format!("{host}:{DEFAULT_PATH}")
                }
            };
            resolve_program(&spec.argv[0], &search, &cwd)
        });
        let program = match made {
            Ok(p) => p,
            Err(msg) => {
                let _ = force_remove_dir_all(&root);
                return Err(fail(msg));
            }
        };

        let entry = Arc::new(ContainerEntry {
            id: id.clone(),
            name: spec.name.clone(),
            pod: sandbox.pod.name.clone(),
            sandbox_id: sandbox.id.clone(),
            program,
            argv: spec.argv.clone(),
            env,
            cwd,
            root: root.clone(),
            status: StatusCell::new(Status::Created),
            leader: Mutex::new(None),
            execs: Mutex::new(Vec::new()),
        });
        self.registry
            .add_container(&sandbox.id, id, entry)
            .map_err(|_| {
                let _ = force_remove_dir_all(&root);
                BackendError::not_found(format!("sandbox \"{}\" was removed", sandbox.id))
            })
    }

    async fn start_container(&self, id: &ContainerId) -> Result<()> {
        let entry = self.registry.container_or_err(id)?;
        let spawner = self.spawner()?;
        let logs = self.config.logs.clone();
        let live = spawner.live_token();
        spawner
            .run(async move { start_on_spawner(entry, logs, live) })
            .await
            .map_err(|e| err(e.to_string()))?
    }

    async fn signal(&self, id: &ContainerId, signal: i32) -> Result<()> {
        let sig = proc::signal_from_raw(signal)
            .ok_or_else(|| err(format!("invalid signal number {signal}")))?;
        let Some(entry) = self.registry.container(id) else {
            return Ok(());
        };
        let leader = lock(&entry.leader).clone();
        match leader {
            Some(p) => p
                .signal_group(sig)
                .map_err(|e| err(format!("signalling container \"{}\": {e}", entry.name))),
            None => Ok(()),
        }
    }

    async fn wait(&self, id: &ContainerId) -> Result<ExitStatus> {
        self.registry.wait(id).await
    }

    async fn remove_container(&self, id: &ContainerId) -> Result<()> {
        self.remove_entry(&id.0).await;
        Ok(())
    }

    async fn exec(
        &self,
        id: &ContainerId,
        argv: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput> {
        let entry = self.registry.running(id)?;
        let arg0 = check_exec_argv(argv)?;
        let path = entry
            .env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str())
            .unwrap_or(DEFAULT_PATH);
        let program = resolve_program(arg0, path, &entry.cwd).map_err(err)?;
        let spawner = self.spawner()?;
        let live = spawner.live_token();
        let argv = argv.to_vec();
        // Dropping this (the caller gave up) kills the exec.
        let (_cancel, cancelled) = oneshot::channel::<()>();
        spawner
            .run(exec_on_spawner(
                entry, program, argv, timeout, cancelled, live,
            ))
            .await
            .map_err(|e| err(e.to_string()))?
    }
}
