//! A private containerd for the CRI tests: its own config, root, state, runc root, socket and
//! images under one temporary directory, started for a test and torn down after it (also on
//! panic), so nothing outlives the test: no process, mount, cgroup or directory.
//!
//! The config is the one of `shared/docs/cri-proxy-notes.md` §5.2, which runs host-network
//! CRI pods offline on these machines (`restrict_oom_score_adj = true`: the VM lacks
//! `CAP_SYS_RESOURCE`; runc `Root` under the directory). The images are built by
//! `scripts/make-cri-images.sh` and imported as `localhost/busybox:latest` and
//! `localhost/pause:latest` (the sandbox image).
//!
//! Threads: containerd gets `PR_SET_PDEATHSIG=SIGKILL`, which fires when the *thread* that
//! started it ends. Start (and restart) it from the thread that owns the `Containerd`, i.e.
//! the test's own thread, not from a tokio worker.
//!
//! Leftovers of a test process that was SIGKILLed (its directory's `owner` pid is gone) are
//! torn down the same way by the next `Containerd::start`.

use std::future::Future;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use super::cri::Cri;

mod teardown;
pub use teardown::{cgroup_dirs, mounts_under};
use teardown::{owner_stamp, sweep_leftovers, teardown_dir};

/// Every harness directory is `$TMPDIR/<PREFIX><pid>-<n>`; the name is also the pods'
/// cgroup parent.
pub const PREFIX: &str = "wasmhook-cri-";
/// The CRI plugin's containerd namespace.
pub const NAMESPACE: &str = "k8s.io";
pub const BUSYBOX: &str = "localhost/busybox:latest";
pub const PAUSE: &str = "localhost/pause:latest";

/// How long containerd may take to answer on its socket (it takes ~50 ms here).
const STARTUP: Duration = Duration::from_secs(30);

/// A running containerd (or one stopped by [`Containerd::kill`], to be started again).
pub struct Containerd {
    dir: PathBuf,
    child: Option<Child>,
}

/// Whether the CRI tests can run here. `Err` says what is missing.
fn prerequisites() -> Result<(), String> {
    if !rustix::process::geteuid().is_root() {
        return Err("containerd needs root".into());
    }
    for (tool, arg, package) in [
        ("containerd", "--version", "containerd"),
        ("ctr", "--version", "containerd"),
        ("containerd-shim-runc-v2", "-v", "containerd"),
        ("runc", "--version", "runc"),
    ] {
        match Command::new(tool).arg(arg).output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                return Err(format!(
                    "`{tool} {arg}` failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ))
            }
            Err(e) => return Err(format!("{tool}: {e} (apt-get install {package})")),
        }
    }
    if !Path::new("/bin/busybox").exists() {
        return Err("/bin/busybox is missing (apt-get install busybox-static)".into());
    }
    Ok(())
}

/// `true` when containerd tests can run; otherwise says why on stderr and returns `false`,
/// or panics when `WASMHOOK_REQUIRE_CONTAINERD` is set (CI).
pub fn containerd_ready() -> bool {
    super::can_run(
        "containerd test",
        &["WASMHOOK_REQUIRE_CONTAINERD"],
        prerequisites().err(),
    )
}

impl Containerd {
    /// A containerd with the plain busybox and pause images, or `None` (test skipped) when
    /// the machine cannot run one; see [`containerd_ready`].
    pub fn start() -> Option<Containerd> {
        Self::start_with(|_, _| {})
    }

    /// Like [`Containerd::start`]; `image_files(tree, host_only)` first fills `tree`, whose
    /// content becomes a second layer of the busybox image (`tree/hooks/x.wasm` is
    /// `/hooks/x.wasm` in its containers). `host_only` is [`Containerd::host_only`], for
    /// files that must exist on the host and in no container.
    pub fn start_with(image_files: impl FnOnce(&Path, &Path)) -> Option<Containerd> {
        if !containerd_ready() {
            return None;
        }
        sweep_leftovers();
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        if dir.exists() {
            teardown_dir(&dir);
        }
        std::fs::create_dir_all(&dir).expect("create the containerd directory");
        // From here on, a panic tears down whatever exists.
        let mut cd = Containerd { dir, child: None };
        std::fs::write(
            cd.dir.join("owner"),
            owner_stamp(std::process::id()).unwrap(),
        )
        .expect("write owner");
        for sub in [
            "root",
            "state",
            "runc-root",
            "opt",
            "cni/bin",
            "cni/net.d",
            "logs",
            "volumes",
        ] {
            std::fs::create_dir_all(cd.dir.join(sub)).unwrap();
        }
        std::fs::create_dir_all(cd.host_only()).unwrap();

        let t0 = Instant::now();
        let tree = cd.dir.join("image-tree");
        std::fs::create_dir_all(&tree).unwrap();
        image_files(&tree, &cd.host_only());
        super::run_script("make-cri-images.sh", &[&cd.dir.join("images"), &tree]);
        std::fs::write(cd.dir.join("config.toml"), cd.config()).unwrap();
        cd.spawn();
        for (name, tar) in [
            ("localhost/pause", "pause.tar"),
            ("localhost/busybox", "busybox.tar"),
        ] {
            cd.ctr(&[
                "images",
                "import",
                "--base-name",
                name,
                cd.dir.join("images").join(tar).to_str().unwrap(),
            ]);
        }
        cd.wait_cri_images();
        eprintln!(
            "containerd harness: {} ready in {:.2?}",
            cd.dir.display(),
            t0.elapsed()
        );
        Some(cd)
    }

    /// The harness directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// containerd's CRI (and containerd API) socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    /// A directory that exists on the host but in no container (containers see neither the
    /// harness directory nor anything under it, except bind-mounted volumes).
    pub fn host_only(&self) -> PathBuf {
        self.dir.join("host-only")
    }

    /// A host directory for volumes, `volumes/<name>`, created.
    pub fn volume(&self, name: &str) -> PathBuf {
        let p = self.dir.join("volumes").join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// The pods' log directory `logs/<name>`, created.
    pub fn log_dir(&self, name: &str) -> PathBuf {
        let p = self.dir.join("logs").join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// The cgroup parent to give the pods (`/wasmhook-cri-<pid>-<n>`), so that teardown
    /// removes every cgroup they made.
    pub fn cgroup_parent(&self) -> String {
        format!("/{}", self.dir.file_name().unwrap().to_string_lossy())
    }

    /// runc's state directory for the CRI namespace.
    pub fn runc_root(&self) -> PathBuf {
        self.dir.join("runc-root").join(NAMESPACE)
    }

    /// containerd's log (stdout and stderr), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }

    /// The last `n` lines of containerd's log.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// containerd's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Kill containerd (SIGKILL, as a crash would) and reap it. Its shims and containers
    /// keep running; [`Containerd::restart`] picks them up again.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start containerd again on the same config, root and state (after [`Containerd::kill`]),
    /// and wait until its CRI answers.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
        self.wait_cri_images();
    }

    /// `ctr --address <socket> -n k8s.io ARGS`, which must succeed; its stdout.
    pub fn ctr(&self, args: &[&str]) -> String {
        let out = Command::new("ctr")
            .arg("--address")
            .arg(self.socket())
            .args(["-n", NAMESPACE])
            .args(args)
            .output()
            .expect("run ctr");
        assert!(
            out.status.success(),
            "ctr {args:?}: {}\ncontainerd log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log_tail(30)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn config(&self) -> String {
        let t = self.dir.display();
        format!(
            r#"version = 2
root = "{t}/root"
state = "{t}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{t}/containerd.sock"
[ttrpc]
  address = "{t}/containerd.sock.ttrpc"
[debug]
  level = "info"
[plugins."io.containerd.internal.v1.opt"]
  path = "{t}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  # No CAP_SYS_RESOURCE on these VMs: runc could not lower the sandbox's oom_score_adj.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{t}/runc-root"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{t}/cni/bin"
    conf_dir = "{t}/cni/net.d"
"#
        )
    }

    /// Start containerd and wait (bounded) until it answers on its socket.
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("containerd.log"))
            .unwrap();
        let mut cmd = Command::new("containerd");
        cmd.arg("--config")
            .arg(self.dir.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::KILL,
                ))
                .map_err(std::io::Error::from)
            });
        }
        let child = cmd.spawn().expect("spawn containerd");
        std::fs::write(self.dir.join("containerd.pid"), child.id().to_string()).unwrap();
        self.child = Some(child);

        let deadline = Instant::now() + STARTUP;
        loop {
            let ok = Command::new("ctr")
                .arg("--address")
                .arg(self.socket())
                .arg("version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "containerd exited at start ({status}):\n{}",
                    self.log_tail(40)
                );
            }
            assert!(
                Instant::now() < deadline,
                "containerd did not answer on {} within {STARTUP:?}:\n{}",
                self.socket().display(),
                self.log_tail(40)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait (bounded) until the CRI plugin answers and sees both images.
    fn wait_cri_images(&self) {
        let cri = Cri::new(self.socket());
        let ready = block_on_thread(async move {
            let deadline = Instant::now() + STARTUP;
            let mut last = String::new();
            while Instant::now() < deadline {
                let mut all = true;
                for image in [PAUSE, BUSYBOX] {
                    match cri.image_status(image).await {
                        Ok(r) if r.image.is_some() => {}
                        Ok(_) => {
                            all = false;
                            last = format!("the CRI does not see {image} yet");
                        }
                        Err(e) => {
                            all = false;
                            last = e.to_string();
                        }
                    }
                }
                if all {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(last)
        });
        if let Err(e) = ready {
            panic!(
                "containerd's CRI is not ready within {STARTUP:?}: {e}\n{}",
                self.log_tail(40)
            );
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // The polite way first, while containerd runs: the CRI stops and removes every pod,
        // so the shims exit and clean up after themselves.
        if self
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
        {
            let cri = Cri::new(self.socket());
            if let Err(e) = block_on_thread(remove_all_pods(cri)) {
                eprintln!("containerd harness: removing the pods through the CRI: {e}");
            }
        }
        self.kill();
        // Then by force whatever is left (also what a CRI teardown could not reach).
        let leaks = teardown_dir(&self.dir);
        if !leaks.is_empty() && !std::thread::panicking() {
            panic!("containerd harness leaked: {}", leaks.join("; "));
        }
    }
}

/// StopPodSandbox + RemovePodSandbox for every pod, bounded.
async fn remove_all_pods(cri: Cri) -> Result<(), String> {
    let bound = Duration::from_secs(20);
    tokio::time::timeout(bound, async {
        let pods = cri.list_pod_sandbox().await.map_err(|e| e.to_string())?;
        for p in pods {
            cri.stop_pod_sandbox(&p.id)
                .await
                .map_err(|e| e.to_string())?;
            cri.remove_pod_sandbox(&p.id)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })
    .await
    .map_err(|_| format!("not done within {bound:?}"))?
}

/// Run `fut` to completion on a fresh current-thread runtime in a thread of its own, so it
/// works from synchronous code, from `Drop`, and from inside another runtime alike.
pub fn block_on_thread<F>(fut: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(fut)
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// A CRI client on this containerd's socket.
impl Containerd {
    pub fn cri(&self) -> Cri {
        Cri::new(self.socket())
    }
}
