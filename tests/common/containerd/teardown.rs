//! Tearing down what a harness containerd made, by force: its containers, shims, mounts,
//! cgroups and directory, also those of a test process that was SIGKILLed before its
//! `Drop` ran. Everything here works from `/proc`, `/sys/fs/cgroup` and mountinfo, so it
//! needs no containerd to be running.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use super::{NAMESPACE, PREFIX};

/// Where containerd 1.6 puts shim sockets whatever its config says (notes §5.2, 5.).
const SHIM_SOCKETS: &str = "/run/containerd/s";

/// `<pid> <start time>` of a live process: a pid plus its start time names one process
/// even after the pid is reused.
pub(super) fn owner_stamp(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22 (starttime); fields after the parenthesised command name are plain.
    let after = &stat[stat.rfind(')')? + 2..];
    let start = after.split(' ').nth(19)?;
    Some(format!("{pid} {start}"))
}

/// Tear down the harness directories of test processes that are gone (SIGKILLed runs).
pub(super) fn sweep_leftovers() {
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
pub(super) fn teardown_dir(dir: &Path) -> Vec<String> {
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
