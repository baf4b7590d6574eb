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

/// Every harness directory is `$TMPDIR/<PREFIX><pid>-<n>`; the name is also the pods'
/// cgroup parent.
pub const PREFIX: &str = "wasmhook-cri-";
/// The CRI plugin's containerd namespace.
pub const NAMESPACE: &str = "k8s.io";
pub const BUSYBOX: &str = "localhost/busybox:latest";
pub const PAUSE: &str = "localhost/pause:latest";
/// Where containerd 1.6 puts shim sockets whatever its config says (notes §5.2, 5.).
const SHIM_SOCKETS: &str = "/run/containerd/s";

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
        let out = Command::new("bash")
            .arg(super::repo().join("scripts/make-cri-images.sh"))
            .arg(cd.dir.join("images"))
            .arg(&tree)
            .output()
            .expect("run make-cri-images.sh");
        assert!(
            out.status.success(),
            "make-cri-images.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
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

/// `<pid> <start time>` of a live process: a pid plus its start time names one process
/// even after the pid is reused.
fn owner_stamp(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22 (starttime); fields after the parenthesised command name are plain.
    let after = &stat[stat.rfind(')')? + 2..];
    let start = after.split(' ').nth(19)?;
    Some(format!("{pid} {start}"))
}

/// Tear down the harness directories of test processes that are gone (SIGKILLed runs).
fn sweep_leftovers() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with(PREFIX) {
            continue;
        }
        let dir = e.path();
        let stale = match std::fs::read_to_string(dir.join("owner")) {
            Ok(stamp) => {
                let pid = stamp.split(' ').next().and_then(|p| p.parse::<u32>().ok());
                pid.and_then(owner_stamp).as_deref() != Some(stamp.trim())
            }
            // Not written yet (being created right now), or never: old enough means gone.
            Err(_) => e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age > Duration::from_secs(120)),
        };
        if stale {
            eprintln!(
                "containerd harness: sweeping {} (its test process is gone)",
                dir.display()
            );
            let leaks = teardown_dir(&dir);
            if !leaks.is_empty() {
                eprintln!(
                    "containerd harness: sweeping {}: {}",
                    dir.display(),
                    leaks.join("; ")
                );
            }
        }
    }
}

/// Remove everything a harness directory's containerd made: its containers, shims,
/// containerd itself (when a stale directory still has one), mounts, cgroups, shim sockets
/// and the directory. Returns what could not be removed.
fn teardown_dir(dir: &Path) -> Vec<String> {
    let socket = dir.join("containerd.sock");

    // containerd itself, when it was not ours to reap (a sweep): only if its command line
    // still names this directory's config.
    if let Some(pid) = std::fs::read_to_string(dir.join("containerd.pid"))
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
    {
        let config = dir.join("config.toml");
        if cmdline(pid).is_some_and(|args| args.iter().any(|a| Path::new(a) == config)) {
            kill_and_wait(pid);
        }
    }

    // The containers: runc kills their processes (pause, sleep, execs) and removes their
    // state and cgroups.
    let runc_root = dir.join("runc-root").join(NAMESPACE);
    if runc_root.is_dir() {
        if let Ok(out) = Command::new("runc")
            .arg("--root")
            .arg(&runc_root)
            .args(["list", "-q"])
            .output()
        {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("runc")
                    .arg("--root")
                    .arg(&runc_root)
                    .args(["delete", "--force", id])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }

    // The shims started for this containerd (`-address <socket>` on their command line),
    // with the sockets they listen on in /run/containerd/s.
    let shims = shims_of(&socket);
    let sockets: Vec<PathBuf> = shims
        .iter()
        .flat_map(|&pid| listening_sockets(pid))
        .collect();
    for &pid in &shims {
        kill_and_wait(pid);
    }
    for s in sockets.iter().filter(|s| s.starts_with(SHIM_SOCKETS)) {
        let _ = std::fs::remove_file(s);
    }
    // Left empty by us, or by nobody: a system containerd would have content there.
    let _ = std::fs::remove_dir(SHIM_SOCKETS);
    let _ = std::fs::remove_dir("/run/containerd");

    // Mounts (rootfs overlays, sandbox shm), deepest first.
    for _ in 0..5 {
        let mounts = mounts_under(dir);
        if mounts.is_empty() {
            break;
        }
        for m in mounts {
            let _ = rustix::mount::unmount(&m, rustix::mount::UnmountFlags::DETACH);
        }
    }

    // The pods' cgroups, under the parent named after the directory: in each v1 hierarchy,
    // or at the top of the v2 tree.
    if let Some(name) = dir.file_name() {
        for c in cgroup_dirs(name) {
            remove_cgroup(&c);
        }
    }

    if dir.exists() {
        if let Err(e) = std::fs::remove_dir_all(dir) {
            // Retry once: a shim may still have been writing into it.
            std::thread::sleep(Duration::from_millis(200));
            if dir.exists() {
                if let Err(e2) = std::fs::remove_dir_all(dir) {
                    eprintln!(
                        "containerd harness: removing {}: {e}, then {e2}",
                        dir.display()
                    );
                }
            }
        }
    }

    let mut leaks = Vec::new();
    let shims = shims_of(&socket);
    if !shims.is_empty() {
        leaks.push(format!("shim processes {shims:?}"));
    }
    let mounts = mounts_under(dir);
    if !mounts.is_empty() {
        leaks.push(format!("mounts {mounts:?}"));
    }
    if dir.exists() {
        leaks.push(format!("directory {}", dir.display()));
    }
    leaks
}

/// A process's argv, or `None` once it is gone (or a zombie, whose cmdline is empty).
fn cmdline(pid: i32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    if raw.is_empty() {
        return None;
    }
    Some(
        raw.split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

/// Alive and not a zombie.
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

/// SIGKILL a process that is not our child and wait (bounded) until it is gone or a zombie
/// (its parent, init or a subreaper, reaps it).
fn kill_and_wait(pid: i32) {
    let Some(p) = rustix::process::Pid::from_raw(pid) else {
        return;
    };
    let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The `containerd-shim*` processes whose `-address` is `socket`.
fn shims_of(socket: &Path) -> Vec<i32> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| alive(pid))
        .filter(|&pid| {
            cmdline(pid).is_some_and(|args| {
                args.first().is_some_and(|a| a.contains("containerd-shim"))
                    && args
                        .windows(2)
                        .any(|w| w[0] == "-address" && Path::new(&w[1]) == socket)
            })
        })
        .collect()
}

/// The unix socket paths a process has open (its listening shim socket among them).
fn listening_sockets(pid: i32) -> Vec<PathBuf> {
    let mut inodes = std::collections::HashSet::new();
    if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                let t = target.to_string_lossy();
                if let Some(ino) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                    inodes.insert(ino.to_string());
                }
            }
        }
    }
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/unix")).unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f.len() >= 8 && inodes.contains(f[6]) && f[7].starts_with('/'))
                .then(|| PathBuf::from(f[7]))
        })
        .collect()
}

/// Mount points at or under `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape_mountinfo(m)))
        .filter(|m| m.starts_with(dir))
        .collect();
    found.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    found
}

/// mountinfo escapes space, tab, newline and backslash as `\NNN` (octal).
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where the cgroup `/<name>` can be: `/sys/fs/cgroup/<hierarchy>/<name>` (v1) and
/// `/sys/fs/cgroup/<name>` (v2).
pub fn cgroup_dirs(name: impl AsRef<Path>) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut dirs = vec![root.join(name.as_ref())];
    if let Ok(entries) = std::fs::read_dir(root) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(e.path().join(name.as_ref()));
            }
        }
    }
    dirs
}

/// rmdir a cgroup directory and its children, deepest first (a cgroup's files go with it).
fn remove_cgroup(path: &Path) {
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup(&e.path());
            }
        }
        let _ = std::fs::remove_dir(path);
    }
}

/// A CRI client on this containerd's socket.
impl Containerd {
    pub fn cri(&self) -> Cri {
        Cri::new(self.socket())
    }
}
