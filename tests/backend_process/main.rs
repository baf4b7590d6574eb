//! The process backend against real processes (`/bin/sh`, `sleep`, `true`, `false`, `env`).
//!
//! Only bounded polls, no timing asserts, except the one negative check that a container
//! outlives the thread that started it.

mod cleanup;
mod exec_and_start;
mod processes;
mod volumes;

use std::collections::BTreeSet;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use wasmhook::backend::process::{ProcessBackendConfig, DEFAULT_PATH, EXEC_OUTPUT_LIMIT};
use wasmhook::backend::{
    Backend, ContainerId, ContainerSpec, ExitStatus, LogLine, LogStream, Mount, ProcessBackend,
    Sandbox, SandboxSpec, VolumeSource, VolumeSpec,
};
use wasmhook::events::PodRef;

const BOUND: Duration = Duration::from_secs(10);

struct Fixture {
    backend: ProcessBackend,
    logs: UnboundedReceiver<LogLine>,
    state: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let state = tempfile::tempdir().unwrap();
    let (tx, logs) = unbounded_channel();
    let backend = ProcessBackend::new(ProcessBackendConfig {
        state_dir: Some(state.path().to_path_buf()),
        logs: Some(tx),
    });
    Fixture {
        backend,
        logs,
        state,
    }
}

fn pod(name: &str) -> PodRef {
    PodRef {
        name: name.into(),
        namespace: "default".into(),
        uid: "uid-1".into(),
    }
}

fn sandbox_spec(volumes: Vec<VolumeSpec>) -> SandboxSpec {
    SandboxSpec {
        pod: pod("web"),
        volumes,
    }
}

fn spec(name: &str, argv: &[&str]) -> ContainerSpec {
    ContainerSpec {
        name: name.into(),
        argv: argv.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn sh(name: &str, script: &str) -> ContainerSpec {
    spec(name, &["/bin/sh", "-c", script])
}

async fn sandbox(b: &ProcessBackend) -> Sandbox {
    b.create_sandbox(&sandbox_spec(vec![])).await.unwrap()
}

async fn run(b: &ProcessBackend, sb: &Sandbox, spec: &ContainerSpec) -> (ContainerId, ExitStatus) {
    let id = b.create_container(sb, spec).await.unwrap();
    b.start_container(&id).await.unwrap();
    let st = tokio::time::timeout(BOUND, b.wait(&id))
        .await
        .expect("container did not exit")
        .unwrap();
    (id, st)
}

/// Collect log lines of `container` until `done` holds for them (bounded).
async fn lines_until(
    logs: &mut UnboundedReceiver<LogLine>,
    container: &str,
    done: impl Fn(&[LogLine]) -> bool,
) -> Vec<LogLine> {
    let mut got = Vec::new();
    let deadline = Instant::now() + BOUND;
    while !done(&got) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, logs.recv()).await {
            Ok(Some(l)) if l.container == container => got.push(l),
            Ok(Some(_)) => {}
            _ => panic!("log lines of {container} never satisfied the check; got {got:?}"),
        }
    }
    got
}

async fn first_line(logs: &mut UnboundedReceiver<LogLine>, container: &str) -> String {
    lines_until(logs, container, |l| !l.is_empty()).await[0]
        .line
        .clone()
}

/// A running container `app` (`sleep 1000`, after it printed a first line) in a new sandbox.
async fn running_sleeper(f: &mut Fixture) -> ContainerId {
    let b = &f.backend;
    let sb = sandbox(b).await;
    let id = b
        .create_container(&sb, &sh("app", "echo up; exec sleep 1000"))
        .await
        .unwrap();
    b.start_container(&id).await.unwrap();
    first_line(&mut f.logs, "app").await;
    id
}

fn texts(lines: &[LogLine], stream: LogStream) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.stream == stream)
        .map(|l| l.line.clone())
        .collect()
}

/// `(state, pgrp)` from `/proc/<pid>/stat`, `None` once the process is gone.
fn proc_stat(pid: i32) -> Option<(char, i32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    let _ppid = f.next()?;
    let pgrp = f.next()?.parse().ok()?;
    Some((state, pgrp))
}

/// Gone, or a zombie waiting for someone else (init) to reap it.
fn dead(pid: i32) -> bool {
    matches!(proc_stat(pid), None | Some(('Z', _)) | Some(('X', _)))
}

fn group_members(pgid: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| matches!(proc_stat(pid), Some((s, g)) if g == pgid && s != 'Z'))
        .collect()
}

async fn poll_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + BOUND;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn dir_is_empty(p: &Path) -> bool {
    std::fs::read_dir(p).unwrap().next().is_none()
}
