//! Backends: how the engine creates, starts, signals and removes container processes.
//!
//! The [`Backend`] trait stands in for the CRI runtime service. It takes and returns plain
//! data and holds no lifecycle logic: ordering, hooks, grace periods and restarts live in
//! [`crate::engine`]. The split follows OCI runtimes (and youki's `libcontainer`): a pod
//! *sandbox* owns the shared parts (volumes, network address, namespaces where the backend
//! has them); a *container* is created, then started, signalled, waited for and removed.
//!
//! Invariants every backend keeps:
//! - `wait` may be called any number of times, concurrently, before or after the exit; every
//!   call returns the same [`ExitStatus`].
//! - `signal`/`remove_container` on a container that has already exited succeed ("container
//!   not found" counts as success, as in CRI `StopContainer`).
//! - After `remove_sandbox`, nothing the backend created for the pod is left: processes,
//!   directories, mounts.

mod output;
mod owner;
pub mod process;
mod registry;
pub mod runc;
mod volumes;

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;

use crate::events::PodRef;

pub use process::ProcessBackend;

/// What kind of failure a [`BackendError`] is: what a caller may branch on (the CRI front
/// maps it to a gRPC code, as containerd's `errdefs` kinds are mapped at one boundary).
/// Classified once, where the failure is seen (e.g. runc's output in `runc/command.rs`),
/// never by parsing the message later.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The sandbox, container or image does not exist (or no longer does).
    NotFound,
    /// The thing to create exists already (a duplicate volume name, a runc id in use).
    AlreadyExists,
    /// The backend cannot work at all right now: its runtime binary, the process spawner,
    /// the child subreaper. Retrying the same call will not help until the host changes.
    Unavailable,
    /// The input cannot be used as given (an image reference that does not parse).
    InvalidArgument,
    /// A native exec ran past its timeout (and was killed).
    DeadlineExceeded,
    /// Anything else: invalid input, a failed start, an I/O error.
    #[default]
    Other,
}

/// A backend failure: the message meant for the `Failed` event (`Error: <msg>`), field 0,
/// which `Display` prints as is, and its [`ErrorKind`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub String, ErrorKind);

impl BackendError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        BackendError(message.into(), kind)
    }

    /// An [`ErrorKind::Other`] error.
    pub fn other(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Other, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::AlreadyExists, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    pub fn kind(&self) -> ErrorKind {
        self.1
    }

    /// The message, as the event shows it.
    pub fn message(&self) -> &str {
        &self.0
    }

    /// The same kind, with `context: ` before the message.
    pub fn context(self, context: impl std::fmt::Display) -> Self {
        BackendError(format!("{context}: {}", self.0), self.1)
    }
}

pub type Result<T, E = BackendError> = std::result::Result<T, E>;

/// The argv of a native exec, checked the same way in every backend: not empty, no NUL
/// byte. Returns `argv[0]`.
fn check_exec_argv(argv: &[String]) -> Result<&str> {
    let Some(arg0) = argv.first() else {
        return Err(BackendError::other("exec: no command specified"));
    };
    if argv.iter().any(|a| a.contains('\0')) {
        return Err(BackendError::other("exec: command contains a NUL byte"));
    }
    Ok(arg0)
}

/// Where a pod volume's data comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VolumeSource {
    /// A fresh directory owned by the sandbox, deleted with it.
    EmptyDir,
    /// A host directory used as is and never deleted.
    HostPath(PathBuf),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeSpec {
    pub name: String,
    pub source: VolumeSource,
}

/// What the sandbox of one pod needs.
#[derive(Clone, Debug)]
pub struct SandboxSpec {
    pub pod: PodRef,
    pub volumes: Vec<VolumeSpec>,
}

/// A prepared pod sandbox.
#[derive(Clone, Debug)]
pub struct Sandbox {
    /// Backend-chosen identifier, unique among live sandboxes.
    pub id: String,
    pub pod: PodRef,
    /// The pod's IP: default host of httpGet/tcpSocket hooks.
    pub address: IpAddr,
    /// Host directory of every volume, by volume name.
    pub volumes: BTreeMap<String, PathBuf>,
    /// The pod's network namespace (a bind-mounted nsfs file), when the backend gives the
    /// pod one: host handlers then connect from inside it, so `address` is reachable.
    pub netns: Option<PathBuf>,
}

/// A volume mount of a container, resolved to a host directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub host_path: PathBuf,
    pub container_path: PathBuf,
    pub read_only: bool,
}

/// Everything needed to create one container. The engine has already applied Kubernetes
/// semantics (`$(VAR)` expansion, defaults), so backends use these values as they are.
#[derive(Clone, Debug, Default)]
pub struct ContainerSpec {
    pub name: String,
    pub image: Option<String>,
    /// The argv to run: `command` + `args`, expanded. Empty means the image's default.
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<PathBuf>,
    pub mounts: Vec<Mount>,
    /// `resources.limits.memory`, in bytes.
    pub memory_limit: Option<u64>,
    /// `resources.limits.cpu`, in millicores.
    pub cpu_limit_millis: Option<u64>,
}

/// A created container, as returned by [`Backend::create_container`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ContainerId(pub String);

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a container process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    Exited(i32),
    Signaled(i32),
}

impl ExitStatus {
    /// The exit code Kubernetes reports: the code, or 128 + signal number.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(c) => c,
            ExitStatus::Signaled(s) => 128 + s,
        }
    }
}

/// Output of a native exec (`runc exec`-like); only some backends have it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Where the commands of a container are found, for looking up a hook's `command[0]` in
/// the container as its own exec would (see [`crate::handlers::exec::lookup`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandRoot {
    /// The container's root as seen from the host: `/proc/<init pid>/root`, so the
    /// container's own mounts (volumes) are visible. Paths are resolved inside it.
    pub root: PathBuf,
    /// The working directory of the container's processes.
    pub cwd: String,
    /// The container's `PATH`, if its environment sets one.
    pub path: Option<String>,
}

/// One line a container printed, for `wasmhook run --logs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub pod: String,
    pub container: String,
    pub stream: LogStream,
    pub line: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// `imagePullPolicy` (defaulted as the API server does, in `manifest/defaults.rs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    #[default]
    IfNotPresent,
    Never,
}

impl PullPolicy {
    /// The policy named `s` (`Always`, `IfNotPresent`, `Never`); `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Always" => Some(PullPolicy::Always),
            "IfNotPresent" => Some(PullPolicy::IfNotPresent),
            "Never" => Some(PullPolicy::Never),
            _ => None,
        }
    }
}

/// Whether a backend has an image, as the kubelet asks before deciding to pull
/// (CRI `ImageStatus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImagePresence {
    /// The backend runs no images (the process backend): nothing is pulled, no event.
    NoImages,
    /// Provided locally by the operator (runc's `--images DIR`): used as it is, whatever the
    /// pull policy; a registry is never contacted for it.
    Provided,
    /// Pulled earlier and kept: `IfNotPresent` and `Never` use it, `Always` pulls again.
    Present,
    /// Not there: `Never` fails, the other policies pull.
    Absent,
}

/// What one pull did, for the `Pulled` event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PulledImage {
    /// The image's size: its config and layers as stored in the registry (compressed).
    pub size: u64,
    /// The time the pull itself took.
    pub duration: Duration,
}

/// A container runtime the engine drives. See the module docs for the invariants.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Short name, as given to `--backend`.
    fn name(&self) -> &'static str;

    async fn create_sandbox(&self, spec: &SandboxSpec) -> Result<Sandbox>;

    /// Remove everything of the sandbox; containers still running are killed first.
    async fn remove_sandbox(&self, sandbox: &Sandbox) -> Result<()>;

    async fn create_container(
        &self,
        sandbox: &Sandbox,
        spec: &ContainerSpec,
    ) -> Result<ContainerId>;

    async fn start_container(&self, id: &ContainerId) -> Result<()>;

    /// Deliver `signal` (a raw signal number) to the container: the process backend signals
    /// its whole process group; OCI backends signal the init, as CRI does (when it exits, the
    /// kernel ends the rest of its PID namespace).
    async fn signal(&self, id: &ContainerId, signal: i32) -> Result<()>;

    /// Wait for the container's main process to exit.
    async fn wait(&self, id: &ContainerId) -> Result<ExitStatus>;

    async fn remove_container(&self, id: &ContainerId) -> Result<()>;

    /// Whether `image` is there to run (CRI `ImageStatus`). The default: the backend runs no
    /// images ([`ImagePresence::NoImages`]). An image reference that does not parse is an
    /// [`ErrorKind::InvalidArgument`] error.
    async fn image_presence(&self, image: &str) -> Result<ImagePresence> {
        let _ = image;
        Ok(ImagePresence::NoImages)
    }

    /// Pull `image` (CRI `PullImage`); afterwards [`Backend::image_presence`] says
    /// [`ImagePresence::Present`] and `create_container` can use it. The default: an
    /// [`ErrorKind::Unavailable`] error (only called when `image_presence` says `Absent` or
    /// `Present`).
    async fn pull_image(&self, image: &str) -> Result<PulledImage> {
        let _ = image;
        Err(BackendError::unavailable(format!(
            "the {} backend has no images",
            self.name()
        )))
    }

    /// Where container `id`'s commands are found when its filesystem is its own (OCI
    /// backends). `None` when the container sees the host's files (the process backend)
    /// or is not running.
    fn command_root(&self, id: &ContainerId) -> Option<CommandRoot> {
        let _ = id;
        None
    }

    /// Run `argv` inside the container, the kubelet's native exec path. Bounded by
    /// `timeout`: past it the command is killed and the error is
    /// [`ErrorKind::DeadlineExceeded`].
    async fn exec(
        &self,
        id: &ContainerId,
        argv: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput> {
        let _ = (id, argv, timeout);
        Err(BackendError::unavailable(format!(
            "the {} backend has no native exec",
            self.name()
        )))
    }
}
