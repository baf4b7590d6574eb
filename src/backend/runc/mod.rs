//! The runc backend: containers run by the `runc` OCI runtime, driven the way containerd's
//! runc shim drives it (`runc create` / `start` / `kill` / `delete`), with images from a
//! local directory. Needs root and `runc` (and `ip` from iproute2) on the host.
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
//! - `image` is resolved in the images directory ([`image`]); OCI layouts are unpacked once
//!   per manifest digest into `<state_dir>/images`. The container's rootfs is an overlay
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

pub mod image;
pub mod spec;

use crate::lock;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::watch;

use super::*;

/// Captured stdout, and separately stderr, of a native exec is cut at this size.
pub const EXEC_OUTPUT_LIMIT: usize = 16 << 20;

/// Longer log lines are split, like the CRI's 16 KiB partial lines.
const MAX_LOG_LINE: usize = 16 * 1024;

/// After a process exits, how long its output may still take to reach EOF.
const OUTPUT_DRAIN_GRACE: Duration = Duration::from_secs(1);

/// How long removal waits for a killed container to be reaped.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// Default state directory (a tmpfs on most hosts, like `/run/containerd`).
pub const DEFAULT_STATE_DIR: &str = "/run/wasmhook";

/// Configuration of a [`RuncBackend`].
#[derive(Clone, Debug, Default)]
pub struct RuncBackendConfig {
    /// The local image store (`--images`). `None`: every `image:` is "not found".
    pub images_dir: Option<PathBuf>,
    /// Bundles, sandboxes, the image cache and runc's `--root`. Default [`DEFAULT_STATE_DIR`].
    pub state_dir: Option<PathBuf>,
    /// The runc binary. Default `runc` (through `PATH`).
    pub runc: Option<PathBuf>,
    /// Where container output goes, line by line. `None`: output is discarded.
    pub logs: Option<UnboundedSender<LogLine>>,
}

/// Runs containers with runc. See the module docs.
pub struct RuncBackend {
    config: RuncBackendConfig,
    state_dir: PathBuf,
    runc: PathBuf,
    /// `None` until checked; whether cgroup limits can be applied.
    cgroups: Option<bool>,
    subreaper: std::result::Result<(), String>,
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
    netns: String,
    containers: BTreeSet<String>,
}

struct ContainerEntry {
    /// runc's container id.
    id: String,
    name: String,
    sandbox_id: String,
    bundle: PathBuf,
    /// Whether `<bundle>/rootfs` is an overlay mount to undo.
    overlay: bool,
    status: watch::Sender<Status>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Status {
    Created,
    Running,
    Exited(ExitStatus),
    Failed(String),
}

impl Status {
    fn is_final(&self) -> bool {
        matches!(self, Status::Exited(_) | Status::Failed(_))
    }
}

fn err(msg: impl Into<String>) -> BackendError {
    BackendError(msg.into())
}

impl fmt::Debug for RuncBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = lock(&self.state);
        f.debug_struct("RuncBackend")
            .field("state_dir", &self.state_dir)
            .field("sandboxes", &st.sandboxes.len())
            .field("containers", &st.containers.len())
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
        RuncBackend {
            config,
            state_dir,
            runc,
            cgroups: None,
            subreaper,
            state: Mutex::new(State::default()),
            seq: AtomicU64::new(0),
            swept: AtomicBool::new(false),
        }
    }

    /// Tear down the sandboxes under `<state_dir>/sandboxes` whose owner process is gone
    /// (left by a SIGKILLed wasmhook; see the module docs): `runc delete --force` each of
    /// their containers, unmount the rootfs, delete the netns and the directory.
    async fn sweep(&self) {
        let parent = self.state_dir.join("sandboxes");
        for (dir, why) in super::owner::stale_dirs(&parent, "") {
            let id = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let bundles: Vec<PathBuf> = std::fs::read_dir(dir.join("containers"))
                .map(|rd| rd.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            for bundle in bundles {
                let Some(cid) = bundle.file_name().map(|n| n.to_string_lossy().into_owned()) else {
                    continue;
                };
                match self
                    .runc_cmd()
                    .args(["delete", "--force", &cid])
                    .output()
                    .await
                {
                    Ok(o) if !o.status.success() && !not_found(&o.stderr) => tracing::warn!(
                        "sweep: runc delete {cid}: {}",
                        String::from_utf8_lossy(&o.stderr).trim()
                    ),
                    Err(e) => tracing::warn!("sweep: runc delete {cid}: {e}"),
                    _ => {}
                }
                // Not mounted (a copied rootfs, or already gone) is fine.
                let _ = rustix::mount::unmount(
                    bundle.join("rootfs"),
                    rustix::mount::UnmountFlags::DETACH,
                );
            }
            let netns = format!("wasmhook-{id}");
            if netns_path(&netns).exists() {
                let _ = run_ip(&["netns", "delete", &netns]).await;
            }
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => tracing::info!("swept stale sandbox {} ({why})", dir.display()),
                Err(e) => tracing::warn!("sweeping stale sandbox {}: {e}", dir.display()),
            }
        }
    }

    /// runc's `--root`: its state for our containers (`runc --root <this> list`).
    pub fn runc_root(&self) -> PathBuf {
        self.state_dir.join("runc")
    }

    fn cgroups_ok(&self) -> bool {
        self.cgroups.unwrap_or_else(cgroup_limits_available)
    }

    fn runc_cmd(&self) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.runc);
        c.arg("--root").arg(self.runc_root());
        c.stdin(Stdio::null());
        c
    }

    fn container(&self, id: &ContainerId) -> Option<Arc<ContainerEntry>> {
        lock(&self.state).containers.get(&id.0).cloned()
    }

    fn container_or_err(&self, id: &ContainerId) -> Result<Arc<ContainerEntry>> {
        self.container(id)
            .ok_or_else(|| err(format!("container \"{id}\" not found")))
    }

    /// `runc delete --force`, wait for the reaping, unmount and delete the bundle.
    async fn remove_entry(&self, id: &str) {
        let Some(entry) = lock(&self.state).containers.remove(id) else {
            return;
        };
        let out = self
            .runc_cmd()
            .args(["delete", "--force", &entry.id])
            .output()
            .await;
        match out {
            Ok(o) if !o.status.success() && !not_found(&o.stderr) => tracing::warn!(
                "runc delete {}: {}",
                entry.id,
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => tracing::warn!("runc delete {}: {e}", entry.id),
            _ => {}
        }
        let mut rx = entry.status.subscribe();
        if *rx.borrow() != Status::Created
            && tokio::time::timeout(KILL_WAIT, rx.wait_for(Status::is_final))
                .await
                .is_err()
        {
            tracing::warn!(
                "container {} was not reaped within {KILL_WAIT:?}",
                entry.name
            );
        }
        entry.status.send_if_modified(|s| {
            let open = !s.is_final();
            if open {
                *s = Status::Failed(format!("container \"{}\" was removed", entry.name));
            }
            open
        });
        if let Some(sb) = lock(&self.state).sandboxes.get_mut(&entry.sandbox_id) {
            sb.containers.remove(id);
        }
        let (bundle, overlay) = (entry.bundle.clone(), entry.overlay);
        let _ = tokio::task::spawn_blocking(move || remove_bundle(&bundle, overlay)).await;
    }

    /// Blocking: run runc and wait. For `Drop`.
    fn delete_blocking(&self, id: &str) {
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

impl Drop for RuncBackend {
    fn drop(&mut self) {
        let st = std::mem::take(self.state.get_mut().unwrap_or_else(|e| e.into_inner()));
        for c in st.containers.values() {
            self.delete_blocking(&c.id);
            remove_bundle(&c.bundle, c.overlay);
        }
        for sb in st.sandboxes.values() {
            netns_delete_blocking(&sb.netns);
            let _ = std::fs::remove_dir_all(&sb.dir);
        }
    }
}

/// Undo the overlay (lazily: a dying container may still hold it) and delete the bundle.
fn remove_bundle(bundle: &Path, overlay: bool) {
    let rootfs = bundle.join("rootfs");
    if overlay {
        if let Err(e) = rustix::mount::unmount(&rootfs, rustix::mount::UnmountFlags::DETACH) {
            tracing::warn!("unmounting {}: {e}", rootfs.display());
        }
    }
    if let Err(e) = std::fs::remove_dir_all(bundle) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("removing {}: {e}", bundle.display());
        }
    }
}

fn not_found(stderr: &[u8]) -> bool {
    let s = String::from_utf8_lossy(stderr);
    s.contains("does not exist") || s.contains("not exist") || s.contains("not running")
}

/// cgroup v2 with the memory and cpu controllers, or v1 memory and cpu hierarchies.
fn cgroup_limits_available() -> bool {
    let root = Path::new("/sys/fs/cgroup");
    if let Ok(c) = std::fs::read_to_string(root.join("cgroup.controllers")) {
        return c.split_whitespace().any(|x| x == "memory")
            && c.split_whitespace().any(|x| x == "cpu");
    }
    root.join("memory/memory.limit_in_bytes").exists()
        && (root.join("cpu/cpu.cfs_quota_us").exists()
            || root.join("cpu,cpuacct/cpu.cfs_quota_us").exists())
}

fn netns_path(name: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(name)
}

async fn run_ip(args: &[&str]) -> std::result::Result<(), String> {
    let out = tokio::process::Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("ip {}: {e} (is iproute2 installed?)", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn netns_delete_blocking(name: &str) {
    let _ = std::process::Command::new("ip")
        .args(["netns", "delete", name])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The last error runc logged (`--log-format json`), else `fallback`.
fn runc_error(log: &Path, fallback: &[u8]) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let last = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["level"] == "error" || v["level"] == "fatal")
        .filter_map(|v| v["msg"].as_str().map(str::to_owned))
        .next_back();
    last.unwrap_or_else(|| String::from_utf8_lossy(fallback).trim().to_string())
}

/// A name safe as one path component and as part of a runc id (`[\w+.-]`).
fn sanitize(name: &str) -> String {
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

/// `KEY=value` list where later keys win, keeping first-seen order.
fn merge_env(image: &[String], spec: &[(String, String)]) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    let mut values: HashMap<String, String> = HashMap::new();
    let pairs = image
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.clone(), String::new()),
        })
        .chain(spec.iter().cloned());
    for (k, v) in pairs {
        if values.insert(k.clone(), v).is_none() {
            order.push(k);
        }
    }
    if !values.contains_key("PATH") {
        order.insert(0, "PATH".into());
        values.insert("PATH".into(), super::process::DEFAULT_PATH.into());
    }
    order
        .into_iter()
        .map(|k| {
            let v = &values[&k];
            format!("{k}={v}")
        })
        .collect()
}

/// Mount an overlay of `lower` at `<bundle>/rootfs`; on failure copy `lower` there instead.
/// Returns whether it is an overlay.
fn make_rootfs(bundle: &Path, lower: &Path) -> std::result::Result<bool, String> {
    let rootfs = bundle.join("rootfs");
    let upper = bundle.join("upper");
    let work = bundle.join("work");
    for d in [&rootfs, &upper, &work] {
        std::fs::create_dir_all(d).map_err(|e| format!("creating {}: {e}", d.display()))?;
    }
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    let data = std::ffi::CString::new(opts).map_err(|e| e.to_string())?;
    match rustix::mount::mount(
        "overlay",
        &rootfs,
        "overlay",
        rustix::mount::MountFlags::empty(),
        data.as_c_str(),
    ) {
        Ok(()) => Ok(true),
        Err(e) => {
            tracing::debug!("overlay for {}: {e}; copying the image", rootfs.display());
            let _ = std::fs::remove_dir(&rootfs);
            let out = std::process::Command::new("cp")
                .arg("-a")
                .arg(lower)
                .arg(&rootfs)
                .output()
                .map_err(|e| format!("copying the image: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "copying the image {}: {}",
                    lower.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            Ok(false)
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
        super::owner::write(dir.path()).map_err(|e| {
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
        let mut volumes = BTreeMap::new();
        for v in &spec.volumes {
            if v.name.is_empty() || v.name.contains(['/', '\0']) || v.name == "." || v.name == ".."
            {
                return Err(err(format!("invalid volume name {:?}", v.name)));
            }
            if volumes.contains_key(&v.name) {
                return Err(err(format!("duplicate volume name \"{}\"", v.name)));
            }
            let host = match &v.source {
                VolumeSource::EmptyDir => {
                    let p = dir.path().join("volumes").join(&v.name);
                    std::fs::create_dir_all(&p).map_err(|e| {
                        err(format!(
                            "emptyDir volume \"{}\": {}: {e}",
                            v.name,
                            p.display()
                        ))
                    })?;
                    p
                }
                VolumeSource::HostPath(p) => {
                    let abs = std::path::absolute(p).unwrap_or_else(|_| p.clone());
                    if !abs.exists() {
                        return Err(err(format!(
                            "hostPath volume \"{}\": path \"{}\" does not exist",
                            v.name,
                            p.display()
                        )));
                    }
                    abs
                }
            };
            volumes.insert(v.name.clone(), host);
        }
        // Names are at most 255 bytes; the sandbox id is at most ~48.
        let netns = format!("wasmhook-{id}");
        run_ip(&["netns", "add", &netns]).await.map_err(err)?;
        if let Err(e) = run_ip(&["-n", &netns, "link", "set", "lo", "up"]).await {
            netns_delete_blocking(&netns);
            return Err(err(e));
        }
        let dir = dir.keep();
        lock(&self.state).sandboxes.insert(
            id.clone(),
            SandboxEntry {
                dir,
                netns: netns.clone(),
                containers: BTreeSet::new(),
            },
        );
        Ok(Sandbox {
            id,
            pod: spec.pod.clone(),
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            volumes,
            netns: Some(netns_path(&netns)),
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
        if let Err(e) = run_ip(&["netns", "delete", &sb.netns]).await {
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
        if let Err(e) = &self.subreaper {
            return Err(err(e.clone()));
        }
        let sb_dir = match lock(&self.state).sandboxes.get(&sandbox.id) {
            Some(sb) => sb.dir.clone(),
            None => return Err(err(format!("sandbox \"{}\" not found", sandbox.id))),
        };
        let netns = sandbox
            .netns
            .clone()
            .ok_or_else(|| err("the sandbox has no network namespace"))?;
        let image_name = spec
            .image
            .clone()
            .filter(|i| !i.is_empty())
            .ok_or_else(|| err(format!("container \"{}\": no image", spec.name)))?;
        let images_dir = self.config.images_dir.clone().ok_or_else(|| {
            err(format!(
                "image \"{image_name}\" not found: no image directory (--images DIR)"
            ))
        })?;
        let cache = self.state_dir.join("images");
        let img = {
            let name = image_name.clone();
            tokio::task::spawn_blocking(move || image::resolve(&images_dir, &name, &cache))
                .await
                .map_err(|e| err(e.to_string()))?
                .map_err(|e| err(format!("failed to pull image \"{image_name}\": {e}")))?
        };
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-{}-{seq}", sandbox.id, sanitize(&spec.name));
        let bundle = sb_dir.join("containers").join(&id);
        std::fs::create_dir_all(&bundle)
            .map_err(|e| err(format!("creating {}: {e}", bundle.display())))?;
        let overlay = {
            let (b, l) = (bundle.clone(), img.rootfs.clone());
            match tokio::task::spawn_blocking(move || make_rootfs(&b, &l)).await {
                Ok(Ok(o)) => o,
                Ok(Err(e)) => {
                    remove_bundle(&bundle, false);
                    return Err(err(e));
                }
                Err(e) => return Err(err(e.to_string())),
            }
        };
        let fail = |msg: String| {
            remove_bundle(&bundle, overlay);
            err(msg)
        };
        let argv = if spec.argv.is_empty() {
            img.entrypoint.iter().chain(&img.cmd).cloned().collect()
        } else {
            spec.argv.clone()
        };
        if argv.is_empty() {
            return Err(fail(format!(
                "container \"{}\": no command specified",
                spec.name
            )));
        }
        let cgroups = spec.memory_limit.is_some() || spec.cpu_limit_millis.is_some();
        let cgroups_ok = cgroups && self.cgroups_ok();
        if cgroups && !cgroups_ok {
            tracing::warn!(
                "container {}: no cgroup memory/cpu controllers on this host; limits not applied",
                spec.name
            );
        }
        let cwd = spec
            .working_dir
            .as_ref()
            .map(|p| p.display().to_string())
            .or(img.working_dir.clone())
            .unwrap_or_else(|| "/".into());
        let oci = spec::build(&spec::SpecInput {
            rootfs: &bundle.join("rootfs"),
            argv,
            env: merge_env(&img.env, &spec.env),
            cwd,
            hostname: sandbox.pod.name.chars().take(63).collect(),
            netns: &netns,
            mounts: &spec.mounts,
            memory_limit: spec.memory_limit.filter(|_| cgroups_ok),
            cpu_limit_millis: spec.cpu_limit_millis.filter(|_| cgroups_ok),
        })
        .map_err(|e| fail(format!("runtime spec: {e}")))?;
        oci.save(bundle.join("config.json"))
            .map_err(|e| fail(format!("writing config.json: {e}")))?;

        // stdio of `runc create`, inherited by the container.
        let (stdout, stderr, readers) = if self.config.logs.is_some() {
            let (or, ow) = std::io::pipe().map_err(|e| fail(format!("pipe: {e}")))?;
            let (er, ew) = std::io::pipe().map_err(|e| fail(format!("pipe: {e}")))?;
            (Stdio::from(ow), Stdio::from(ew), Some((or, er)))
        } else {
            (Stdio::null(), Stdio::null(), None)
        };
        let log = bundle.join("runc.log");
        let pid_file = bundle.join("init.pid");
        let mut cmd = self.runc_cmd();
        cmd.arg("--log")
            .arg(&log)
            .args(["--log-format", "json", "create", "--bundle"])
            .arg(&bundle)
            .arg("--pid-file")
            .arg(&pid_file)
            .arg(&id)
            .stdout(stdout)
            .stderr(stderr);
        let status = cmd.status().await;
        drop(cmd); // closes our copies of the pipes' write ends
        let created = match status {
            Ok(s) if s.success() => Ok(()),
            Ok(_) => Err(runc_error(&log, b"runc create failed")),
            Err(e) => Err(format!("running {}: {e}", self.runc.display())),
        };
        if let Err(e) = created {
            self.delete_blocking(&id);
            // containerd's wording, as the kubelet shows it in the `Failed` event.
            return Err(fail(format!(
                "failed to create containerd task: failed to create shim task: OCI runtime \
                 create failed: {e}: unknown"
            )));
        }
        let pid = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .and_then(rustix::process::Pid::from_raw);
        let pidfd =
            pid.map(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::NONBLOCK));
        let pidfd = match pidfd {
            Some(Ok(fd)) => fd,
            other => {
                self.delete_blocking(&id);
                let why = match other {
                    Some(Err(e)) => e.to_string(),
                    _ => "no pid file".into(),
                };
                return Err(fail(format!(
                    "container \"{}\": init process: {why}",
                    spec.name
                )));
            }
        };
        let (status_tx, _) = watch::channel(Status::Created);
        let entry = Arc::new(ContainerEntry {
            id: id.clone(),
            name: spec.name.clone(),
            sandbox_id: sandbox.id.clone(),
            bundle: bundle.clone(),
            overlay,
            status: status_tx,
        });
        let mut pumps = Vec::new();
        if let (Some((or, er)), Some(tx)) = (readers, self.config.logs.clone()) {
            for (r, stream) in [
                (OwnedFd::from(or), LogStream::Stdout),
                (OwnedFd::from(er), LogStream::Stderr),
            ] {
                match tokio::net::unix::pipe::Receiver::from_owned_fd(r) {
                    Ok(rx) => pumps.push(tokio::spawn(pump_lines(
                        rx,
                        tx.clone(),
                        sandbox.pod.name.clone(),
                        spec.name.clone(),
                        stream,
                    ))),
                    Err(e) => tracing::warn!("reading output of {}: {e}", spec.name),
                }
            }
        }
        tokio::spawn(reap(entry.clone(), pidfd, pumps));
        let mut st = lock(&self.state);
        match st.sandboxes.get_mut(&sandbox.id) {
            Some(sb) => {
                sb.containers.insert(id.clone());
                st.containers.insert(id.clone(), entry);
                Ok(ContainerId(id))
            }
            None => {
                drop(st);
                self.delete_blocking(&id);
                remove_bundle(&bundle, overlay);
                Err(err(format!("sandbox \"{}\" was removed", sandbox.id)))
            }
        }
    }

    async fn start_container(&self, id: &ContainerId) -> Result<()> {
        let entry = self.container_or_err(id)?;
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
            .map_err(|e| err(format!("running {}: {e}", self.runc.display())))?;
        if !out.status.success() {
            return Err(err(format!(
                "failed to start container \"{}\": {}",
                entry.name,
                runc_error(&log, &out.stderr)
            )));
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
        let Some(entry) = self.container(id) else {
            return Ok(());
        };
        if entry.status.borrow().is_final() {
            return Ok(());
        }
        let out = self
            .runc_cmd()
            .args(["kill", &entry.id, &signal.to_string()])
            .output()
            .await
            .map_err(|e| err(format!("running {}: {e}", self.runc.display())))?;
        if out.status.success() || not_found(&out.stderr) || entry.status.borrow().is_final() {
            Ok(())
        } else {
            Err(err(format!(
                "signalling container \"{}\": {}",
                entry.name,
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }

    async fn wait(&self, id: &ContainerId) -> Result<ExitStatus> {
        let entry = self.container_or_err(id)?;
        let mut rx = entry.status.subscribe();
        drop(entry);
        let status = match rx.wait_for(Status::is_final).await {
            Ok(s) => s.clone(),
            Err(_) => Status::Failed(format!("container \"{id}\" was removed")),
        };
        match status {
            Status::Exited(st) => Ok(st),
            Status::Failed(msg) => Err(err(msg)),
            _ => unreachable!("wait_for returns a final status"),
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
        if argv.is_empty() {
            return Err(err("exec: no command specified"));
        }
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
            .map_err(|e| err(format!("running {}: {e}", self.runc.display())))?;
        let out = tokio::spawn(capture(child.stdout.take(), EXEC_OUTPUT_LIMIT));
        let errs = tokio::spawn(capture(child.stderr.take(), EXEC_OUTPUT_LIMIT));
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
            out.abort();
            errs.abort();
            cleanup(&pid_file, &log);
            return Err(err("command timed out"));
        };
        let status = status.map_err(|e| err(format!("exec: waiting for runc: {e}")))?;
        // A background process the command left may hold the pipes: stop reading soon.
        let drain = |mut h: tokio::task::JoinHandle<Vec<u8>>| async move {
            match tokio::time::timeout(OUTPUT_DRAIN_GRACE, &mut h).await {
                Ok(Ok(v)) => v,
                _ => {
                    h.abort();
                    Vec::new()
                }
            }
        };
        let stdout = drain(out).await;
        let stderr = drain(errs).await;
        let runc_failed = runc_error(&log, b"");
        cleanup(&pid_file, &log);
        if !runc_failed.is_empty() {
            return Err(err(format!("exec: {runc_failed}")));
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

/// Wait for the container init to exit (pidfd readable), reap it, drain its output.
async fn reap(
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
    for p in pumps.iter_mut() {
        if tokio::time::timeout(OUTPUT_DRAIN_GRACE, &mut *p)
            .await
            .is_err()
        {
            p.abort();
        }
    }
    tracing::debug!("container {} ended: {status:?}", entry.id);
    entry.status.send_replace(status);
}

/// Read `reader` to EOF and send every line to `tx` (lines over 16 KiB are split).
async fn pump_lines<R: AsyncRead + Unpin>(
    reader: R,
    tx: UnboundedSender<LogLine>,
    pod: String,
    container: String,
    stream: LogStream,
) {
    let mut r = BufReader::with_capacity(64 * 1024, reader).take(u64::MAX);
    let mut line = Vec::new();
    loop {
        line.clear();
        r.set_limit(MAX_LOG_LINE as u64);
        match r.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                let _ = tx.send(LogLine {
                    pod: pod.clone(),
                    container: container.clone(),
                    stream,
                    line: String::from_utf8_lossy(&line).into_owned(),
                });
            }
        }
    }
}

/// Read to EOF, keeping the first `cap` bytes.
async fn capture<R: AsyncRead + Unpin>(reader: Option<R>, cap: usize) -> Vec<u8> {
    let Some(mut reader) = reader else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let keep = n.min(cap - out.len());
                out.extend_from_slice(&buf[..keep]);
            }
        }
    }
    out
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
