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
//! Every child (containers and execs) is forked from one dedicated thread owned by the
//! backend, with `PR_SET_PDEATHSIG = SIGKILL`: Linux sends the signal when the *thread*
//! that forked the child exits, so forking from a tokio worker or blocking-pool thread
//! (which tokio retires when idle or at runtime shutdown) would kill containers at random.
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

mod output;
mod proc;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use rustix::process::Signal;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::{oneshot, watch};

use self::proc::{Proc, SpawnSpec, Spawner};
use super::*;
use crate::lock;

/// `PATH` of a container whose spec sets none (the value container runtimes use).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The environment variable holding a container's root directory (see the module docs).
pub const ROOT_ENV: &str = "WASMHOOK_ROOT";

/// Captured stdout, and separately stderr, of a native exec is cut at this size.
pub const EXEC_OUTPUT_LIMIT: usize = 16 << 20;

/// After a process exits, how long its output readers may still take to reach EOF (only
/// a process that left the group can hold the pipe that long).
const OUTPUT_DRAIN_GRACE: Duration = Duration::from_secs(1);

/// How long removal waits for a SIGKILLed container to be reaped before giving up on it
/// (a process stuck in uninterruptible sleep); it is still reaped later.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// Configuration of a [`ProcessBackend`].
#[derive(Clone, Debug, Default)]
pub struct ProcessBackendConfig {
    /// Where per-pod directories (emptyDir volumes, container roots) go; created if missing.
    /// Default: a fresh `wasmhook-<pod>-XXXXXX` directory under `$TMPDIR` per pod.
    pub state_dir: Option<PathBuf>,
    /// Where container output goes, line by line. `None`: output is discarded.
    pub logs: Option<UnboundedSender<LogLine>>,
}

/// Runs each container as a host process group; the embedded default. See the module docs.
pub struct ProcessBackend {
    config: ProcessBackendConfig,
    /// Started on first use, so constructing a backend is infallible and cheap.
    spawner: OnceLock<Result<Spawner, String>>,
    state: Mutex<State>,
    seq: AtomicU64,
    /// Whether stale sandboxes have been swept (on the first `create_sandbox`).
    swept: AtomicBool,
}

#[derive(Default)]
struct State {
    sandboxes: HashMap<String, SandboxEntry>,
    containers: HashMap<String, Arc<ContainerEntry>>,
}

struct SandboxEntry {
    dir: PathBuf,
    containers: BTreeSet<String>,
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
    status: watch::Sender<Status>,
    /// The leader once started. Status changes from `Created` happen under this lock.
    leader: Mutex<Option<Arc<Proc>>>,
    /// Native execs in flight, killed with the container.
    execs: Mutex<Vec<Arc<Proc>>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Status {
    Created,
    Running,
    Exited(ExitStatus),
    /// Never ran, or the backend lost track of it; the message says why.
    Failed(String),
    Removed,
}

impl Status {
    fn is_final(&self) -> bool {
        !matches!(self, Status::Created | Status::Running)
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
        let st = lock(&self.state);
        f.debug_struct("ProcessBackend")
            .field("config", &self.config)
            .field("sandboxes", &st.sandboxes.len())
            .field("containers", &st.containers.len())
            .finish()
    }
}

fn err(msg: impl Into<String>) -> BackendError {
    BackendError(msg.into())
}

impl ProcessBackend {
    pub fn new(config: ProcessBackendConfig) -> Self {
        ProcessBackend {
            config,
            spawner: OnceLock::new(),
            state: Mutex::new(State::default()),
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
            .map_err(|e| err(e.clone()))
    }

    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    fn container(&self, id: &ContainerId) -> Option<Arc<ContainerEntry>> {
        lock(&self.state).containers.get(&id.0).cloned()
    }

    fn container_or_err(&self, id: &ContainerId) -> Result<Arc<ContainerEntry>> {
        self.container(id)
            .ok_or_else(|| err(format!("container \"{id}\" not found")))
    }

    /// Kill, wait for and forget a container; delete its root. Unknown ids are a no-op.
    async fn remove_entry(&self, id: &str) {
        let Some(entry) = lock(&self.state).containers.remove(id) else {
            return;
        };
        {
            let leader = lock(&entry.leader);
            entry.status.send_if_modified(|s| {
                let created = *s == Status::Created;
                if created {
                    *s = Status::Removed;
                }
                created
            });
            if let Some(p) = leader.as_ref() {
                let _ = p.signal_group(Signal::KILL);
            }
        }
        for p in lock(&entry.execs).iter() {
            let _ = p.signal_group(Signal::KILL);
        }
        let mut rx = entry.status.subscribe();
        if tokio::time::timeout(KILL_WAIT, rx.wait_for(Status::is_final))
            .await
            .is_err()
        {
            tracing::warn!(
                "container {} did not die within {KILL_WAIT:?} of SIGKILL",
                entry.name
            );
        }
        if let Some(sb) = lock(&self.state).sandboxes.get_mut(&entry.sandbox_id) {
            sb.containers.remove(id);
        }
        remove_dir_blocking(entry.root.clone()).await;
    }
}

impl Drop for ProcessBackend {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
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
        let mut volumes = BTreeMap::new();
        for v in &spec.volumes {
            check_name("volume", &v.name)?;
            if volumes.contains_key(&v.name) {
                return Err(err(format!("duplicate volume name \"{}\"", v.name)));
            }
            let host = match &v.source {
                VolumeSource::EmptyDir => {
                    let p = dir.path().join("volumes").join(&v.name);
                    std::fs::create_dir_all(&p).map_err(|e| {
                        err(format!(
                            "emptyDir volume \"{}\": creating {}: {e}",
                            v.name,
                            p.display()
                        ))
                    })?;
                    p
                }
                VolumeSource::HostPath(p) => {
                    let abs = std::path::absolute(p).map_err(|e| {
                        err(format!(
                            "hostPath volume \"{}\": {}: {e}",
                            v.name,
                            p.display()
                        ))
                    })?;
                    match std::fs::metadata(&abs) {
                        Ok(_) => abs,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            return Err(err(format!(
                                "hostPath volume \"{}\": path \"{}\" does not exist",
                                v.name,
                                p.display()
                            )))
                        }
                        Err(e) => {
                            return Err(err(format!(
                                "hostPath volume \"{}\": path \"{}\": {e}",
                                v.name,
                                p.display()
                            )))
                        }
                    }
                }
            };
            volumes.insert(v.name.clone(), host);
        }
        let dir = dir.keep();
        let id = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("{prefix}{}", self.next_seq()));
        lock(&self.state).sandboxes.insert(
            id.clone(),
            SandboxEntry {
                dir,
                containers: BTreeSet::new(),
            },
        );
        Ok(Sandbox {
            id,
            pod: spec.pod.clone(),
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            volumes,
            netns: None,
        })
    }

    async fn remove_sandbox(&self, sandbox: &Sandbox) -> Result<()> {
        let ids: Vec<String> = match lock(&self.state).sandboxes.get(&sandbox.id) {
            Some(sb) => sb.containers.iter().cloned().collect(),
            None => return Ok(()),
        };
        for id in ids {
            self.remove_entry(&id).await;
        }
        let Some(sb) = lock(&self.state).sandboxes.remove(&sandbox.id) else {
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
        let sandbox_dir = match lock(&self.state).sandboxes.get(&sandbox.id) {
            Some(sb) => sb.dir.clone(),
            None => return Err(err(format!("sandbox \"{}\" not found", sandbox.id))),
        };
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
            status: watch::Sender::new(Status::Created),
            leader: Mutex::new(None),
            execs: Mutex::new(Vec::new()),
        });
        {
            let mut st = lock(&self.state);
            if let Some(sb) = st.sandboxes.get_mut(&sandbox.id) {
                sb.containers.insert(id.clone());
                st.containers.insert(id.clone(), entry);
                return Ok(ContainerId(id));
            }
        }
        let _ = force_remove_dir_all(&root);
        Err(err(format!("sandbox \"{}\" was removed", sandbox.id)))
    }

    async fn start_container(&self, id: &ContainerId) -> Result<()> {
        let entry = self.container_or_err(id)?;
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
        let Some(entry) = self.container(id) else {
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
        let entry = self.container_or_err(id)?;
        let mut rx = entry.status.subscribe();
        drop(entry);
        let status = match rx.wait_for(Status::is_final).await {
            Ok(s) => s.clone(),
            Err(_) => Status::Removed,
        };
        match status {
            Status::Exited(st) => Ok(st),
            Status::Failed(msg) => Err(err(msg)),
            _ => Err(err(format!("container \"{id}\" was removed before it ran"))),
        }
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
        let entry = self.container_or_err(id)?;
        if *entry.status.borrow() != Status::Running {
            return Err(err(format!("container \"{}\" is not running", entry.name)));
        }
        let Some(arg0) = argv.first() else {
            return Err(err("exec: no command specified"));
        };
        if argv.iter().any(|a| a.contains('\0')) {
            return Err(err("exec: command contains a NUL byte"));
        }
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

/// Runs on the spawner thread.
fn start_on_spawner(
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
            readers.push(tokio::spawn(output::pump_lines(
                out,
                tx.clone(),
                entry.pod.clone(),
                entry.name.clone(),
                LogStream::Stdout,
            )));
        }
        if let Some(errp) = spawned.stderr {
            readers.push(tokio::spawn(output::pump_lines(
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
        proc::join_within(&mut readers, OUTPUT_DRAIN_GRACE).await;
        tracing::debug!("container {} ended: {status:?}", entry.id);
        entry.status.send_replace(status);
    });
    Ok(())
}

/// Runs on the spawner thread.
async fn exec_on_spawner(
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
    let mut out = spawned
        .stdout
        .map(|r| tokio::spawn(output::capture(r, EXEC_OUTPUT_LIMIT)));
    let mut errs = spawned
        .stderr
        .map(|r| tokio::spawn(output::capture(r, EXEC_OUTPUT_LIMIT)));
    let exited = spawned.exit.exited();
    tokio::pin!(exited);
    let outcome = tokio::select! {
        _ = &mut exited => None,
        _ = tokio::time::sleep(timeout) => Some("command timed out"),
        _ = &mut cancelled => Some("exec cancelled"),
    };
    if outcome.is_some() {
        let _ = proc.signal_group(Signal::KILL);
        let _ = exited.await;
    }
    let status = proc.finish();
    lock(&entry.execs).retain(|p| !Arc::ptr_eq(p, &proc));
    let collect = |h: &mut Option<tokio::task::JoinHandle<Vec<u8>>>| {
        let h = h.take();
        async move {
            match h {
                Some(mut h) => match tokio::time::timeout(OUTPUT_DRAIN_GRACE, &mut h).await {
                    Ok(Ok(v)) => v,
                    _ => {
                        h.abort();
                        Vec::new()
                    }
                },
                None => Vec::new(),
            }
        }
    };
    let stdout = collect(&mut out).await;
    let stderr = collect(&mut errs).await;
    if let Some(msg) = outcome {
        return Err(err(msg));
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

/// A mount's symlink inside the container root: relative path → host path.
type Link = (PathBuf, PathBuf);

fn plan_mounts(mounts: &[Mount]) -> std::result::Result<Vec<Link>, String> {
    let mut links: Vec<Link> = Vec::new();
    for m in mounts {
        let cp = &m.container_path;
        if !cp.is_absolute() {
            return Err(format!("mount path \"{}\" is not absolute", cp.display()));
        }
        let mut rel = PathBuf::new();
        for c in cp.components() {
            match c {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(n) => rel.push(n),
                Component::ParentDir | Component::Prefix(_) => {
                    return Err(format!(
                        "mount path \"{}\" must not contain \"..\"",
                        cp.display()
                    ))
                }
            }
        }
        if rel.as_os_str().is_empty() {
            return Err("mount path \"/\" is not supported by the process backend".into());
        }
        if !m.host_path.exists() {
            return Err(format!(
                "mount source \"{}\" for \"{}\" does not exist",
                m.host_path.display(),
                cp.display()
            ));
        }
        let host = std::path::absolute(&m.host_path).map_err(|e| e.to_string())?;
        for (other, _) in &links {
            if *other == rel {
                return Err(format!("duplicate mount path \"{}\"", cp.display()));
            }
            if rel.starts_with(other) || other.starts_with(&rel) {
                return Err(format!(
                    "mount paths \"/{}\" and \"/{}\" are nested, which the process backend \
                     cannot represent",
                    other.display(),
                    rel.display()
                ));
            }
        }
        links.push((rel, host));
    }
    Ok(links)
}

fn make_root(root: &Path, links: &[Link]) -> std::result::Result<(), String> {
    std::fs::create_dir_all(root)
        .map_err(|e| format!("creating container root {}: {e}", root.display()))?;
    for (rel, host) in links {
        let link = root.join(rel);
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("creating {}: {e}", parent.display()))?;
        }
        std::os::unix::fs::symlink(host, &link)
            .map_err(|e| format!("linking {} to {}: {e}", link.display(), host.display()))?;
    }
    Ok(())
}

/// A container path under a mount becomes the host path inside the volume; any other path
/// is a host path as is.
fn translate_path(p: &Path, mounts: &[Mount]) -> PathBuf {
    mounts
        .iter()
        .filter_map(|m| {
            p.strip_prefix(&m.container_path).ok().map(|rest| {
                (
                    m.container_path.components().count(),
                    m.host_path.join(rest),
                )
            })
        })
        .max_by_key(|(depth, _)| *depth)
        .map(|(_, host)| host)
        .unwrap_or_else(|| p.to_path_buf())
}

/// Resolve `arg0` like `execvp`: a name through `search` (a `PATH` value), a path with a
/// slash against `cwd`. Messages follow runc's.
fn resolve_program(arg0: &str, search: &str, cwd: &Path) -> std::result::Result<PathBuf, String> {
    if arg0.contains('/') {
        let p = cwd.join(arg0);
        return match std::fs::metadata(&p) {
            Err(e) => Err(format!(
                "unable to start container process: exec: \"{arg0}\": stat {}: {}",
                p.display(),
                io_reason(&e)
            )),
            Ok(_) if !is_executable(&p) => Err(format!(
                "unable to start container process: exec: \"{arg0}\": permission denied"
            )),
            Ok(_) => Ok(p),
        };
    }
    for dir in search.split(':').filter(|d| !d.is_empty()) {
        let candidate = cwd.join(dir).join(arg0);
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    Err(format!(
        "unable to start container process: exec: \"{arg0}\": executable file not found in $PATH"
    ))
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file())
        && rustix::fs::access(p, rustix::fs::Access::EXEC_OK).is_ok()
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

fn check_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(err(format!("invalid {what} name {name:?}")));
    }
    Ok(())
}

/// A name safe as one path component.
fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    match s.as_str() {
        "" | "." | ".." => "_".into(),
        _ => s,
    }
}

async fn remove_dir_blocking(dir: PathBuf) {
    let shown = dir.display().to_string();
    match tokio::task::spawn_blocking(move || force_remove_dir_all(&dir)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("removing {shown}: {e}"),
        Err(e) => tracing::warn!("removing {shown}: {e}"),
    }
}

/// `remove_dir_all` that also copes with directories a container made unwritable, and
/// with a directory that is already gone. Never follows symlinks.
fn force_remove_dir_all(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    make_writable(dir);
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    let mode = meta.permissions().mode();
    if mode & 0o700 != 0o700 {
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o700));
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                make_writable(&e.path());
            }
        }
    }
}
