//! Running `wasmhook run` in tests: a bounded run with its JSON lines parsed (events, hook
//! results, readiness changes, the final `PodStatus`), and helpers to poll, signal and check
//! what a run left behind.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use super::repo;

pub const BIN: &str = env!("CARGO_BIN_EXE_wasmhook");
/// No run may take longer than this; the child is killed past it.
pub const RUN_LIMIT: Duration = Duration::from_secs(60);

pub fn example(name: &str) -> PathBuf {
    repo().join("examples/pods").join(name)
}

pub fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures/pods").join(name)
}

/// The output of one run.
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// When the child was seen exiting.
    pub ended: SystemTime,
    pub elapsed: Duration,
}

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}\n{}", self.dump()))
            })
            .collect()
    }

    /// Kubernetes events (lines with a `reason`, no `kind`).
    pub fn events(&self) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|v| v.get("kind").is_none() && v.get("reason").is_some())
            .collect()
    }

    /// `(reason, container)` of every event, in order.
    pub fn sequence(&self) -> Vec<(String, String)> {
        self.events()
            .iter()
            .map(|e| (s(&e["reason"]), s(&e["container"])))
            .collect()
    }

    pub fn hooks(&self) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|v| v["kind"] == "HookResult")
            .collect()
    }

    pub fn hook(&self, container: &str, hook: &str) -> Value {
        self.hooks()
            .into_iter()
            .find(|h| h["container"] == container && h["hook"] == hook)
            .unwrap_or_else(|| panic!("no {hook} HookResult for {container}\n{}", self.dump()))
    }

    pub fn pod_status(&self, pod: &str) -> Value {
        self.lines()
            .into_iter()
            .find(|v| v["kind"] == "PodStatus" && v["pod"] == pod)
            .unwrap_or_else(|| panic!("no PodStatus for {pod}\n{}", self.dump()))
    }

    pub fn container_status(&self, pod: &str, container: &str) -> Value {
        let st = self.pod_status(pod);
        st["containers"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"] == container).cloned())
            .unwrap_or_else(|| panic!("no status of {container}\n{}", self.dump()))
    }

    pub fn dump(&self) -> String {
        format!(
            "exit: {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

pub fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

pub fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(r, c)| (r.to_string(), c.to_string()))
        .collect()
}

pub fn timestamp(v: &Value) -> SystemTime {
    humantime::parse_rfc3339(v["timestamp"].as_str().expect("timestamp"))
        .expect("RFC 3339 timestamp")
}

/// A running `wasmhook` with its output collected on threads (no pipe can fill up).
pub struct Running {
    pub child: Child,
    pub started: Instant,
    pub out: JoinHandle<String>,
    pub err: JoinHandle<String>,
}

pub fn drain(mut r: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// `wasmhook run --output json --no-cache ARGS...` with `TMPDIR=tmp`, to [`start`].
pub fn command(tmp: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("run")
        .args(["--output", "json", "--no-cache"])
        .args(args)
        .env("TMPDIR", tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Start `cmd` (from [`command`]) with its output collected.
pub fn start(mut cmd: Command) -> Running {
    let mut child = cmd.spawn().expect("spawn wasmhook");
    let out = drain(child.stdout.take().expect("stdout"));
    let err = drain(child.stderr.take().expect("stderr"));
    Running {
        child,
        started: Instant::now(),
        out,
        err,
    }
}

/// Start `wasmhook run --output json --no-cache ARGS...` with `TMPDIR=tmp`.
pub fn spawn(tmp: &Path, args: &[&str]) -> Running {
    start(command(tmp, args))
}

/// `cmd`, set to start as a shell starts a background job (`wasmhook run pod.yaml &` in a
/// script): with SIGINT and SIGQUIT ignored, which the process inherits.
pub fn as_background_job(mut cmd: Command) -> Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure only calls `signal`, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_IGN);
            libc::signal(libc::SIGQUIT, libc::SIG_IGN);
            Ok(())
        });
    }
    cmd
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait for the exit, killing the child past [`RUN_LIMIT`].
    pub fn wait(mut self) -> Run {
        let status = loop {
            match self.child.try_wait().expect("try_wait") {
                Some(st) => break st,
                None if self.started.elapsed() > RUN_LIMIT => {
                    let _ = self.child.kill();
                    let st = self.child.wait().expect("wait");
                    let run = Run {
                        status: st,
                        stdout: self.out.join().unwrap_or_default(),
                        stderr: self.err.join().unwrap_or_default(),
                        ended: SystemTime::now(),
                        elapsed: self.started.elapsed(),
                    };
                    panic!("wasmhook did not exit within {RUN_LIMIT:?}\n{}", run.dump());
                }
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        let (ended, elapsed) = (SystemTime::now(), self.started.elapsed());
        Run {
            status,
            stdout: self.out.join().unwrap_or_default(),
            stderr: self.err.join().unwrap_or_default(),
            ended,
            elapsed,
        }
    }
}

pub fn run(tmp: &Path, args: &[&str]) -> Run {
    spawn(tmp, args).wait()
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

pub fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(st.success(), "kill -{sig} {pid} failed");
}

/// Poll `cond` every 50 ms for up to `limit`.
pub fn poll(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The process is gone (or a zombie, i.e. dead and waiting for a reaper outside our control).
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
    }
}

/// Sandbox directories (`wasmhook-*`) the process backend left in `tmp`.
pub fn sandboxes(tmp: &Path) -> Vec<String> {
    std::fs::read_dir(tmp)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("wasmhook-"))
                .collect()
        })
        .unwrap_or_default()
}

/// Wait until `file` holds a number (a pid written by a container).
pub fn read_pid(file: &Path, running: &mut Running) -> u32 {
    let mut pid = None;
    let ok = poll(Duration::from_secs(20), || {
        pid = std::fs::read_to_string(file)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        pid.is_some() || matches!(running.child.try_wait(), Ok(Some(_)))
    });
    match pid {
        Some(p) if ok => p,
        _ => {
            let _ = running.child.kill();
            let _ = running.child.wait();
            let out = std::mem::replace(&mut running.out, std::thread::spawn(String::new));
            let err = std::mem::replace(&mut running.err, std::thread::spawn(String::new));
            panic!(
                "the container never wrote its pid to {}\n--- stdout ---\n{}--- stderr ---\n{}",
                file.display(),
                out.join().unwrap_or_default(),
                err.join().unwrap_or_default()
            );
        }
    }
}

/// Whether `python3` runs here (the examples with an HTTP server need it).
pub fn have_python3() -> bool {
    Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Write `text` to `dir/name`; the path, as a string for the command line.
pub fn write(dir: &Path, name: &str, text: &str) -> String {
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    path_str(&file).to_owned()
}
