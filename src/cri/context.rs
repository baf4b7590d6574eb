//! What the proxy knows about a container it runs wasm calls for: a read-only view built
//! from the runtime's answers, cached per container and dropped when the container ends.
//!
//! A view is built in small steps, like youki's tenant builder joins an existing container:
//! 1. `ContainerStatus(verbose)`: state (only RUNNING containers get a view), labels, and
//!    containerd's `info` JSON (`pid`, `sandboxID`, `runtimeSpec`);
//! 2. pin the process: a pidfd, then a directory fd on `/proc/<pid>/root`, then check the
//!    pidfd is still alive, so a reused pid cannot hand us another process's root;
//! 3. `PodSandboxStatus`: the pod's annotations (`wasmhook.dev/*` settings), which the
//!    kubelet copies onto the sandbox;
//! 4. adapt the spec: env (plus `HOME`, as runc adds it), working directory, bind mounts
//!    (the container's volumes), the network namespace.
//!
//! A cached view costs no call to the runtime; it is dropped when the container's process
//! exits (pidfd), or when the proxy relays a call that stops or removes it or its pod.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::fs::{Mode, OFlags};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::metrics::Metrics;
use super::proto::{self, path};
use super::upstream::Upstream;
use crate::events::PodRef;
use crate::grpc::Status;
use crate::handlers::exec::lookup;
use crate::lock;

/// A container volume as hooks see it: the directory at its container path.
#[derive(Debug)]
pub struct MountView {
    pub destination: String,
    pub read_only: bool,
    /// The volume's name, when the host path is a kubelet volume directory
    /// (`.../pods/<uid>/volumes/<plugin>/<name>`).
    pub volume: Option<String>,
}

/// A running container, as a wasm call needs to see it.
#[derive(Debug)]
pub struct ContainerView {
    /// The container's full id (the kubelet may address it by a prefix).
    pub id: String,
    pub sandbox_id: String,
    /// `io.kubernetes.container.name`.
    pub name: String,
    pub pod: PodRef,
    pub pid: u32,
    pidfd: OwnedFd,
    /// `/proc/<pid>/root`, opened once: every path is resolved below it.
    pub root: OwnedFd,
    /// The container process's environment (`runtimeSpec.process.env`), plus `HOME`.
    pub env: Vec<(String, String)>,
    pub cwd: String,
    /// Bind mounts of directories: the container's volumes (and containerd's own
    /// `/dev/shm`); file binds (`/etc/hosts`, ...) cannot be WASI preopens and are left out.
    pub mounts: Vec<MountView>,
    /// The pod's annotations.
    pub annotations: BTreeMap<String, String>,
    /// The preStop exec command, from the kubelet's `io.kubernetes.container.preStopHandler`.
    pub pre_stop: Option<Vec<String>>,
    /// The container's network namespace, when it is not the proxy's own (host network).
    pub netns: Option<OwnedFd>,
    /// Cancelled when the container is stopped or removed: in-flight calls end with it.
    pub cancel: CancellationToken,
}

impl ContainerView {
    /// Whether the container's process is still running.
    pub fn is_alive(&self) -> bool {
        // A pidfd polls readable once its process has exited.
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let mut fds = [PollFd::new(&self.pidfd, PollFlags::IN)];
        let now = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        match poll(&mut fds, Some(&now)) {
            Ok(0) => true,
            Ok(_) => !fds[0].revents().contains(PollFlags::IN),
            // Cannot tell: keep the view; a dead process fails the call's file access.
            Err(_) => true,
        }
    }

    /// A path that names an fd of ours, for APIs that take paths (`/proc/self/fd/N`).
    pub fn fd_path(fd: &OwnedFd) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
    }

    pub fn env_var(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Why no view could be built. The proxy then forwards the call: the runtime's own answer
/// (not found, not running, ...) is what the kubelet must see.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("{0}")]
    Runtime(Status),
    #[error("container is not running")]
    NotRunning,
    #[error("the runtime's status has no usable info: {0}")]
    BadInfo(String),
    #[error("cannot open the container's process {pid}: {err}")]
    Process { pid: u32, err: std::io::Error },
}

/// Per-container views, by the id the kubelet used.
pub struct Contexts {
    views: Mutex<HashMap<String, Arc<ContainerView>>>,
    lookup_timeout: Duration,
}

impl Contexts {
    pub fn new(lookup_timeout: Duration) -> Self {
        Contexts {
            views: Mutex::new(HashMap::new()),
            lookup_timeout,
        }
    }

    /// The view of `id`: cached while its process lives, else built from the runtime.
    pub async fn get(
        &self,
        upstream: &Upstream,
        metrics: &Metrics,
        id: &str,
    ) -> Result<Arc<ContainerView>, ViewError> {
        if let Some(v) = lock(&self.views).get(id).cloned() {
            if v.is_alive() {
                return Ok(v);
            }
            self.forget_container(id);
        }
        let view = Arc::new(self.build(upstream, metrics, id).await?);
        let mut views = lock(&self.views);
        // Two first calls for one container may both have built a view: keep the one that
        // is cached, so every call of the container shares its cancellation.
        if let Some(cached) = views.get(id).filter(|v| v.is_alive()) {
            return Ok(cached.clone());
        }
        views.insert(id.to_string(), view.clone());
        Ok(view)
    }

    /// Drop the view of a container (by full id or the id it was looked up by) and cancel
    /// its in-flight calls.
    pub fn forget_container(&self, id: &str) {
        self.forget(|key, v| key == id || v.id == id);
    }

    /// Drop the views of every container of a pod and cancel their calls.
    pub fn forget_sandbox(&self, sandbox_id: &str) {
        self.forget(|_, v| v.sandbox_id == sandbox_id);
    }

    fn forget(&self, matches: impl Fn(&str, &ContainerView) -> bool) {
        lock(&self.views).retain(|key, v| {
            let gone = matches(key, v);
            if gone {
                v.cancel.cancel();
            }
            !gone
        });
    }

    /// How many containers have a cached view.
    pub fn cached(&self) -> usize {
        lock(&self.views).len()
    }

    /// Cancel every in-flight call (shutdown).
    pub fn cancel_all(&self) {
        self.forget(|_, _| true);
    }

    async fn build(
        &self,
        upstream: &Upstream,
        metrics: &Metrics,
        id: &str,
    ) -> Result<ContainerView, ViewError> {
        // 1. The container's status and spec.
        metrics.lookup();
        let resp: proto::ContainerStatusResponse = upstream
            .unary(
                path::CONTAINER_STATUS,
                &proto::ContainerStatusRequest {
                    container_id: id.to_string(),
                    verbose: true,
                },
                self.lookup_timeout,
            )
            .await
            .map_err(ViewError::Runtime)?;
        let status = resp.status.unwrap_or_default();
        if status.state != proto::CONTAINER_RUNNING {
            return Err(ViewError::NotRunning);
        }
        let info: ContainerInfo = resp
            .info
            .get("info")
            .ok_or_else(|| ViewError::BadInfo("no `info` key (is verbose supported?)".into()))
            .and_then(|s| serde_json::from_str(s).map_err(|e| ViewError::BadInfo(e.to_string())))?;
        if info.pid == 0 {
            return Err(ViewError::NotRunning);
        }
        // 2. Pin the process, then open its root.
        let pid = info.pid;
        let process_err = |err: std::io::Error| ViewError::Process { pid, err };
        let rpid = rustix::process::Pid::from_raw(pid as i32).ok_or(ViewError::NotRunning)?;
        let pidfd = rustix::process::pidfd_open(rpid, rustix::process::PidfdFlags::empty())
            .map_err(|e| process_err(e.into()))?;
        let root = rustix::fs::open(
            format!("/proc/{pid}/root"),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| process_err(e.into()))?;
        let netns = open_netns(pid).map_err(process_err)?;
        let mut view = ContainerView {
            id: status.id.clone(),
            sandbox_id: info.sandbox_id.clone(),
            name: status
                .labels
                .get("io.kubernetes.container.name")
                .cloned()
                .or_else(|| status.metadata.as_ref().map(|m| m.name.clone()))
                .unwrap_or_default(),
            pod: PodRef {
                name: label(&status.labels, "io.kubernetes.pod.name"),
                namespace: label(&status.labels, "io.kubernetes.pod.namespace"),
                uid: label(&status.labels, "io.kubernetes.pod.uid"),
            },
            pid,
            pidfd,
            root,
            env: Vec::new(),
            cwd: String::new(),
            mounts: Vec::new(),
            annotations: BTreeMap::new(),
            pre_stop: pre_stop_command(&status.annotations),
            netns,
            cancel: CancellationToken::new(),
        };
        if !view.is_alive() {
            return Err(ViewError::NotRunning);
        }
        // 3. The pod's annotations.
        metrics.lookup();
        let sandbox: proto::PodSandboxStatusResponse = upstream
            .unary(
                path::POD_SANDBOX_STATUS,
                &proto::PodSandboxStatusRequest {
                    pod_sandbox_id: info.sandbox_id.clone(),
                    verbose: false,
                },
                self.lookup_timeout,
            )
            .await
            .map_err(ViewError::Runtime)?;
        if let Some(s) = sandbox.status {
            view.annotations = s.annotations.into_iter().collect();
            if let Some(m) = s.metadata {
                // The sandbox's metadata is the pod's own; labels may be missing outside
                // the kubelet (e.g. crictl).
                if view.pod.name.is_empty() {
                    view.pod = PodRef {
                        name: m.name,
                        namespace: m.namespace,
                        uid: m.uid,
                    };
                }
            }
        }
        // 4. The spec, adapted.
        let spec = info.runtime_spec;
        view.cwd = if spec.process.cwd.is_empty() {
            "/".into()
        } else {
            spec.process.cwd
        };
        view.env = spec
            .process
            .env
            .iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (kv.clone(), String::new()),
            })
            .collect();
        if view.env_var("HOME").is_none() {
            let home = home_of(&view.root, spec.process.user.uid).unwrap_or_else(|| "/".into());
            view.env.push(("HOME".into(), home));
        }
        view.mounts = spec
            .mounts
            .into_iter()
            .filter(|m| m.kind == "bind" && std::path::Path::new(&m.source).is_dir())
            .map(|m| MountView {
                read_only: m.options.iter().any(|o| o == "ro"),
                volume: volume_name(&m.source),
                destination: m.destination,
            })
            .collect();
        Ok(view)
    }
}

/// The volume name in a kubelet volume path: `/var/lib/kubelet/pods/<uid>/volumes/<plugin>/<name>`.
fn volume_name(source: &str) -> Option<String> {
    let (_, rest) = source.rsplit_once("/volumes/")?;
    let mut parts = rest.split('/');
    let (_plugin, name) = (parts.next()?, parts.next()?);
    (!name.is_empty()).then(|| name.to_string())
}

fn label(labels: &HashMap<String, String>, key: &str) -> String {
    labels.get(key).cloned().unwrap_or_default()
}

/// The container's network namespace, or `None` when it is ours (a host-network pod).
fn open_netns(pid: u32) -> std::io::Result<Option<OwnedFd>> {
    let theirs = rustix::fs::open(
        format!("/proc/{pid}/ns/net"),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let ours = rustix::fs::stat("/proc/self/ns/net")?;
    let st = rustix::fs::fstat(theirs.as_fd())?;
    Ok((st.st_ino != ours.st_ino || st.st_dev != ours.st_dev).then_some(theirs))
}

/// `HOME` as runc sets it when the spec has none: the user's entry in the container's
/// `/etc/passwd`.
fn home_of(root: &OwnedFd, uid: u32) -> Option<String> {
    let fd = lookup::open_in_root(root, "/etc/passwd", OFlags::RDONLY).ok()?;
    let text = std::io::read_to_string(std::fs::File::from(fd)).ok()?;
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 6 && f[2].parse() == Ok(uid)).then(|| f[5].to_string())
    })
}

/// The kubelet stores the preStop handler as JSON in a container annotation; an exec
/// handler's command tells a preStop `ExecSync` from a postStart one.
fn pre_stop_command(annotations: &HashMap<String, String>) -> Option<Vec<String>> {
    #[derive(Deserialize)]
    struct Handler {
        exec: Option<Exec>,
    }
    #[derive(Deserialize)]
    struct Exec {
        #[serde(default)]
        command: Vec<String>,
    }
    let json = annotations.get("io.kubernetes.container.preStopHandler")?;
    serde_json::from_str::<Handler>(json)
        .ok()?
        .exec
        .map(|e| e.command)
}

/// containerd's verbose `info` (the portable subset, which CRI-O's has too).
#[derive(Deserialize)]
struct ContainerInfo {
    #[serde(rename = "sandboxID", default)]
    sandbox_id: String,
    #[serde(default)]
    pid: u32,
    #[serde(rename = "runtimeSpec", default)]
    runtime_spec: Spec,
}

#[derive(Deserialize, Default)]
struct Spec {
    #[serde(default)]
    process: SpecProcess,
    #[serde(default)]
    mounts: Vec<SpecMount>,
}

#[derive(Deserialize, Default)]
struct SpecProcess {
    #[serde(default)]
    env: Vec<String>,
    #[serde(default)]
    cwd: String,
    #[serde(default)]
    user: SpecUser,
}

#[derive(Deserialize, Default)]
struct SpecUser {
    #[serde(default)]
    uid: u32,
}

#[derive(Deserialize)]
struct SpecMount {
    destination: String,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    options: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containerd_info_parses() {
        // Trimmed from a live containerd 1.6.20 answer (cri-proxy-notes §2.3).
        let json = r#"{"sandboxID":"28a3","pid":14415,"removing":false,
          "runtimeSpec":{"process":{"user":{"uid":0,"gid":0},"args":["/bin/sleep","3600"],
            "env":["PATH=/bin:/usr/bin","HOSTNAME=vm","GREETING=hi"],"cwd":"/tmp"},
          "mounts":[{"destination":"/proc","type":"proc","source":"proc"},
            {"destination":"/data","type":"bind","source":"/tmp","options":["rbind","rprivate","ro"]}]}}"#;
        let info: ContainerInfo = serde_json::from_str(json).unwrap();
        assert_eq!((info.sandbox_id.as_str(), info.pid), ("28a3", 14415));
        assert_eq!(info.runtime_spec.process.cwd, "/tmp");
        assert_eq!(info.runtime_spec.process.env.len(), 3);
        let m = &info.runtime_spec.mounts[1];
        assert_eq!((m.destination.as_str(), m.kind.as_str()), ("/data", "bind"));
        assert!(m.options.iter().any(|o| o == "ro"));
    }

    #[test]
    fn volume_names_come_from_kubelet_paths() {
        assert_eq!(
            volume_name("/var/lib/kubelet/pods/u1/volumes/kubernetes.io~empty-dir/cache"),
            Some("cache".into())
        );
        assert_eq!(volume_name("/tmp/vol"), None);
    }

    #[test]
    fn pre_stop_handler_annotation() {
        let mut a = HashMap::new();
        assert_eq!(pre_stop_command(&a), None);
        a.insert(
            "io.kubernetes.container.preStopHandler".into(),
            r#"{"exec":{"command":["/hooks/drain.wasm","--grace"]}}"#.into(),
        );
        assert_eq!(
            pre_stop_command(&a),
            Some(vec!["/hooks/drain.wasm".into(), "--grace".into()])
        );
        a.insert(
            "io.kubernetes.container.preStopHandler".into(),
            r#"{"sleep":{"seconds":5}}"#.into(),
        );
        assert_eq!(pre_stop_command(&a), None);
    }
}
