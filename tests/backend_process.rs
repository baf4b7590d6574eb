//! The process backend against real processes (`/bin/sh`, `sleep`, `true`, `false`, `env`).
//!
//! Only bounded polls, no timing asserts, except the one negative check that a container
//! outlives the thread that started it.

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

#[tokio::test]
async fn exit_codes_and_signals() {
    let f = fixture();
    let b = &f.backend;
    let sb = sandbox(b).await;
    assert_eq!(sb.address.to_string(), "127.0.0.1");
    assert_eq!(
        run(b, &sb, &spec("t", &["true"])).await.1,
        ExitStatus::Exited(0)
    );
    assert_eq!(
        run(b, &sb, &spec("f", &["false"])).await.1,
        ExitStatus::Exited(1)
    );
    assert_eq!(
        run(b, &sb, &sh("c", "exit 3")).await.1,
        ExitStatus::Exited(3)
    );
    let (_, st) = run(b, &sb, &sh("k", "kill -9 $$")).await;
    assert_eq!(st, ExitStatus::Signaled(9));
    assert_eq!(st.code(), 137);
    b.remove_sandbox(&sb).await.unwrap();
    assert!(dir_is_empty(f.state.path()));
}

#[tokio::test]
async fn wait_is_concurrent_and_repeatable() {
    let f = fixture();
    let b = std::sync::Arc::new(f.backend);
    let sb = sandbox(&b).await;
    let id = b
        .create_container(&sb, &sh("w", "read x; exit 5"))
        .await
        .unwrap();
    // Waiters registered before the start.
    let w1 = tokio::spawn({
        let (b, id) = (b.clone(), id.clone());
        async move { b.wait(&id).await.unwrap() }
    });
    let w2 = tokio::spawn({
        let (b, id) = (b.clone(), id.clone());
        async move { b.wait(&id).await.unwrap() }
    });
    b.start_container(&id).await.unwrap();
    // stdin is /dev/null, so `read` fails at once and the script goes on.
    let w1 = tokio::time::timeout(BOUND, w1).await.unwrap().unwrap();
    let w2 = tokio::time::timeout(BOUND, w2).await.unwrap().unwrap();
    assert_eq!(w1, ExitStatus::Exited(5));
    assert_eq!(w2, ExitStatus::Exited(5));
    assert_eq!(b.wait(&id).await.unwrap(), ExitStatus::Exited(5));
    assert_eq!(b.wait(&id).await.unwrap(), ExitStatus::Exited(5));
    // Signal and remove after the exit succeed; so do unknown ids.
    b.signal(&id, 15).await.unwrap();
    b.remove_container(&id).await.unwrap();
    b.remove_container(&id).await.unwrap();
    b.signal(&id, 15).await.unwrap();
    assert!(b.wait(&id).await.is_err());
    b.remove_sandbox(&sb).await.unwrap();
    b.remove_sandbox(&sb).await.unwrap();
}

#[tokio::test]
async fn env_is_exactly_the_spec_plus_default_path() {
    let mut f = fixture();
    let b = &f.backend;
    let sb = sandbox(b).await;
    let mut s = spec("env", &["env"]);
    s.env = vec![
        ("A".into(), "1".into()),
        ("B".into(), "x y=z".into()),
        ("A".into(), "2".into()),
    ];
    let (_, st) = run(b, &sb, &s).await;
    assert_eq!(st, ExitStatus::Exited(0));
    let got: BTreeSet<String> = texts(
        &lines_until(&mut f.logs, "env", |l| l.len() >= 4).await,
        LogStream::Stdout,
    )
    .into_iter()
    .filter(|l| !l.starts_with("WASMHOOK_ROOT="))
    .collect();
    let want: BTreeSet<String> = ["A=2", "B=x y=z", &format!("PATH={DEFAULT_PATH}")]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(got, want);

    // A PATH from the spec is used as is, for resolution too.
    let mut s = spec("env2", &["env"]);
    s.env = vec![("PATH".into(), "/usr/bin:/bin".into())];
    run(b, &sb, &s).await;
    let got = lines_until(&mut f.logs, "env2", |l| l.len() >= 2).await;
    let mut got = texts(&got, LogStream::Stdout);
    got.sort();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0], "PATH=/usr/bin:/bin");
    assert!(got[1].starts_with("WASMHOOK_ROOT=/"), "{got:?}");
    b.remove_sandbox(&sb).await.unwrap();
}

#[tokio::test]
async fn working_dir_and_default_root() {
    let mut f = fixture();
    let b = &f.backend;
    let sb = sandbox(b).await;
    let wd = tempfile::tempdir().unwrap();
    let mut s = spec("pwd", &["pwd", "-P"]);
    s.working_dir = Some(wd.path().to_path_buf());
    run(b, &sb, &s).await;
    assert_eq!(
        PathBuf::from(first_line(&mut f.logs, "pwd").await),
        wd.path().canonicalize().unwrap()
    );

    // Without a working dir: the container root, also in $WASMHOOK_ROOT.
    run(b, &sb, &sh("root", "pwd -P; echo \"$WASMHOOK_ROOT\"")).await;
    let got = lines_until(&mut f.logs, "root", |l| l.len() >= 2).await;
    let cwd = PathBuf::from(&got[0].line);
    let root = PathBuf::from(&got[1].line);
    assert_eq!(cwd, root.canonicalize().unwrap());
    assert!(root.starts_with(f.state.path()), "{root:?}");

    // A missing working dir is a create error.
    let mut s = spec("nowd", &["true"]);
    s.working_dir = Some("/nonexistent/wasmhook-test".into());
    let e = b.create_container(&sb, &s).await.unwrap_err().to_string();
    assert!(
        e.contains("working directory \"/nonexistent/wasmhook-test\""),
        "{e}"
    );
    b.remove_sandbox(&sb).await.unwrap();
    assert!(dir_is_empty(f.state.path()));
}

#[tokio::test]
async fn signal_reaches_the_whole_group() {
    let mut f = fixture();
    let b = &f.backend;
    let sb = sandbox(b).await;

    // The leader traps TERM and reports how its background child died: by the group's
    // SIGTERM (143), not by the SIGKILL that follows the leader's exit.
    let script = "sleep 100 & bg=$!; trap 'wait $bg; echo \"bg=$?\"; exit 7' TERM; \
                  echo \"ready $$\"; wait $bg";
    let id = b.create_container(&sb, &sh("trap", script)).await.unwrap();
    b.start_container(&id).await.unwrap();
    let ready = first_line(&mut f.logs, "trap").await;
    let pgid: i32 = ready.strip_prefix("ready ").unwrap().parse().unwrap();
    poll_until("both processes run", || group_members(pgid).len() == 2).await;
    b.signal(&id, 15).await.unwrap();
    let st = tokio::time::timeout(BOUND, b.wait(&id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(st, ExitStatus::Exited(7));
    // (dash also reports "Terminated" on stderr.)
    let got = lines_until(&mut f.logs, "trap", |l| {
        l.iter().any(|l| l.stream == LogStream::Stdout)
    })
    .await;
    assert_eq!(texts(&got, LogStream::Stdout), ["bg=143"]);

    // Plain shell: SIGTERM kills the leader and its child.
    let id = b
        .create_container(&sb, &sh("plain", "echo $$; sleep 100 & sleep 100"))
        .await
        .unwrap();
    b.start_container(&id).await.unwrap();
    let pgid: i32 = first_line(&mut f.logs, "plain").await.parse().unwrap();
    poll_until("three processes run", || group_members(pgid).len() == 3).await;
    b.signal(&id, 15).await.unwrap();
    let st = tokio::time::timeout(BOUND, b.wait(&id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(st, ExitStatus::Signaled(15));
    poll_until("the group is gone", || group_members(pgid).is_empty()).await;
    b.remove_sandbox(&sb).await.unwrap();
}

#[tokio::test]
async fn leftovers_die_with_the_leader_and_no_zombies() {
    let mut f = fixture();
    let b = &f.backend;
    let sb = sandbox(b).await;
    let (id, st) = run(b, &sb, &sh("orphan", "echo $$; sleep 100 & echo $!")).await;
    assert_eq!(st, ExitStatus::Exited(0));
    let got = lines_until(&mut f.logs, "orphan", |l| l.len() >= 2).await;
    let leader: i32 = got[0].line.parse().unwrap();
    let child: i32 = got[1].line.parse().unwrap();
    // The leader was reaped before `wait` returned: no zombie.
    assert_eq!(proc_stat(leader), None, "leader {leader} left behind");
    poll_until("the orphan is killed", || dead(child)).await;
    b.remove_container(&id).await.unwrap();
    b.remove_sandbox(&sb).await.unwrap();
}

#[tokio::test]
async fn output_lines_are_delivered_to_the_end() {
    let mut f = fixture();
    let b = &f.backend;
    let sb = sandbox(b).await;
    let script = "echo out1; echo err1 >&2; echo out2; printf 'err-tail' >&2; \
                  printf 'no newline'; kill -9 $$";
    let (_, st) = run(b, &sb, &sh("logs", script)).await;
    assert_eq!(st, ExitStatus::Signaled(9));
    let got = lines_until(&mut f.logs, "logs", |l| l.len() >= 5).await;
    assert_eq!(
        texts(&got, LogStream::Stdout),
        ["out1", "out2", "no newline"]
    );
    assert_eq!(texts(&got, LogStream::Stderr), ["err1", "err-tail"]);
    assert!(got.iter().all(|l| l.pod == "web"));

    // A very long line is split, nothing lost.
    run(
        b,
        &sb,
        &sh("long", "head -c 40000 /dev/zero | tr '\\0' a; echo"),
    )
    .await;
    let got = lines_until(&mut f.logs, "long", |l| {
        l.iter().map(|l| l.line.len()).sum::<usize>() >= 40000
    })
    .await;
    assert!(got.len() >= 3 && got.iter().all(|l| l.line.len() <= 16 * 1024));
    b.remove_sandbox(&sb).await.unwrap();
}

#[tokio::test]
async fn chatty_containers_never_block() {
    let script = "yes 'some chatty log line' | head -c 8000000; echo done";
    // Output discarded.
    let b = ProcessBackend::default();
    let sb = sandbox(&b).await;
    assert_eq!(
        run(&b, &sb, &sh("c", script)).await.1,
        ExitStatus::Exited(0)
    );
    b.remove_sandbox(&sb).await.unwrap();
    // A log receiver that went away.
    let (tx, rx) = unbounded_channel();
    drop(rx);
    let b = ProcessBackend::new(ProcessBackendConfig {
        state_dir: None,
        logs: Some(tx),
    });
    let sb = sandbox(&b).await;
    assert_eq!(
        run(&b, &sb, &sh("c", script)).await.1,
        ExitStatus::Exited(0)
    );
    b.remove_sandbox(&sb).await.unwrap();
}

#[tokio::test]
async fn bad_commands_are_clear_create_errors() {
    let f = fixture();
    let b = &f.backend;
    let sb = sandbox(b).await;
    let e = b
        .create_container(&sb, &spec("nf", &["wasmhook-no-such-command"]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("exec: \"wasmhook-no-such-command\": executable file not found in $PATH"),
        "{e}"
    );
    let e = b
        .create_container(&sb, &spec("empty", &[]))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no command specified"), "{e}");
    let e = b
        .create_container(&sb, &spec("abs", &["/nonexistent/bin/app"]))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("stat /nonexistent/bin/app: no such file or directory"),
        "{e}"
    );
    // Resolution uses the container's PATH when it has one.
    let mut s = spec("path", &["sh", "-c", "true"]);
    s.env = vec![("PATH".into(), "/nonexistent".into())];
    assert!(b.create_container(&sb, &s).await.is_err());
    // Failed creates leave nothing behind.
    b.remove_sandbox(&sb).await.unwrap();
    assert!(dir_is_empty(f.state.path()));
}

#[tokio::test]
async fn empty_dir_is_shared_and_removed() {
    let mut f = fixture();
    let b = &f.backend;
    let sb = b
        .create_sandbox(&sandbox_spec(vec![VolumeSpec {
            name: "shared".into(),
            source: VolumeSource::EmptyDir,
        }]))
        .await
        .unwrap();
    let vol = sb.volumes["shared"].clone();
    assert!(vol.is_dir() && vol.starts_with(f.state.path()));
    let mount = |path: &str| Mount {
        host_path: vol.clone(),
        container_path: path.into(),
        read_only: false,
    };
    let mut writer = sh(
        "writer",
        "date >> $WASMHOOK_ROOT/var/log/index.html; echo hi > var/log/f",
    );
    writer.mounts = vec![mount("/var/log")];
    let mut reader = sh("reader", "cat $WASMHOOK_ROOT/usr/share/nginx/html/f");
    reader.mounts = vec![mount("/usr/share/nginx/html")];
    assert_eq!(run(b, &sb, &writer).await.1, ExitStatus::Exited(0));
    assert_eq!(run(b, &sb, &reader).await.1, ExitStatus::Exited(0));
    assert_eq!(first_line(&mut f.logs, "reader").await, "hi");
    assert!(vol.join("index.html").is_file());

    // A sleeping container is killed by remove_sandbox.
    let id = b
        .create_container(&sb, &sh("sleeper", "echo $$; exec sleep 1000"))
        .await
        .unwrap();
    b.start_container(&id).await.unwrap();
    let pid: i32 = first_line(&mut f.logs, "sleeper").await.parse().unwrap();
    b.remove_sandbox(&sb).await.unwrap();
    assert_eq!(proc_stat(pid), None);
    assert!(!vol.exists());
    assert!(dir_is_empty(f.state.path()));
}

#[tokio::test]
async fn host_path_is_used_as_is_and_kept() {
    let mut f = fixture();
    let b = &f.backend;
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("index.html"), "hello\n").unwrap();
    let sb = b
        .create_sandbox(&sandbox_spec(vec![VolumeSpec {
            name: "h".into(),
            source: VolumeSource::HostPath(host.path().to_path_buf()),
        }]))
        .await
        .unwrap();
    assert_eq!(sb.volumes["h"], host.path());
    let m = Mount {
        host_path: host.path().to_path_buf(),
        container_path: "/var/log".into(),
        read_only: true,
    };
    let mut s = sh("cat", "cat $WASMHOOK_ROOT/var/log/index.html");
    s.mounts = vec![m.clone()];
    run(b, &sb, &s).await;
    assert_eq!(first_line(&mut f.logs, "cat").await, "hello");
    // A working dir under a mount path is the volume's directory.
    let mut s = spec("cat2", &["cat", "index.html"]);
    s.mounts = vec![m.clone()];
    s.working_dir = Some("/var/log".into());
    run(b, &sb, &s).await;
    assert_eq!(first_line(&mut f.logs, "cat2").await, "hello");
    // Nested mounts are refused.
    let mut s = spec("nested", &["true"]);
    s.mounts = vec![
        m.clone(),
        Mount {
            container_path: "/var/log/inner".into(),
            ..m
        },
    ];
    let e = b.create_container(&sb, &s).await.unwrap_err();
    assert!(e.to_string().contains("nested"), "{e}");

    b.remove_sandbox(&sb).await.unwrap();
    assert!(host.path().join("index.html").is_file());
    assert!(dir_is_empty(f.state.path()));

    // A missing host path is a clear error.
    let e = b
        .create_sandbox(&sandbox_spec(vec![VolumeSpec {
            name: "gone".into(),
            source: VolumeSource::HostPath("/nonexistent/wasmhook".into()),
        }]))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "hostPath volume \"gone\": path \"/nonexistent/wasmhook\" does not exist"
    );
    assert!(dir_is_empty(f.state.path()));
}

#[tokio::test]
async fn native_exec() {
    let mut f = fixture();
    let b = &f.backend;
    let sb = sandbox(b).await;
    let mut s = sh("app", "echo up; exec sleep 1000");
    s.env = vec![("GREETING".into(), "hi".into())];
    let id = b.create_container(&sb, &s).await.unwrap();
    assert!(b
        .exec(&id, &["true".into()], BOUND)
        .await
        .unwrap_err()
        .to_string()
        .contains("not running"));
    b.start_container(&id).await.unwrap();
    first_line(&mut f.logs, "app").await;
    let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    let out = b
        .exec(
            &id,
            &argv(&["sh", "-c", "echo $GREETING; pwd -P; echo oops >&2; exit 4"]),
            BOUND,
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, 4);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("hi"));
    assert!(
        lines.next().unwrap().contains("/containers/app."),
        "{stdout}"
    );
    assert_eq!(out.stderr, b"oops\n");

    let out = b
        .exec(
            &id,
            &argv(&["sh", "-c", "head -c 20000000 /dev/zero"]),
            BOUND,
        )
        .await
        .unwrap();
    assert_eq!((out.exit_code, out.stdout.len()), (0, EXEC_OUTPUT_LIMIT));

    // Timeout: the whole exec group is killed.
    let marker = f.state.path().join("exec-pid");
    let script = format!("echo $$ > {}; sleep 100 & sleep 100", marker.display());
    let e = b
        .exec(
            &id,
            &argv(&["sh", "-c", &script]),
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "command timed out");
    let pgid: i32 = std::fs::read_to_string(&marker)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    poll_until("the exec group is gone", || group_members(pgid).is_empty()).await;

    let e = b
        .exec(&id, &argv(&["no-such-cmd-xyz"]), BOUND)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("executable file not found"), "{e}");
    // The container itself is untouched by all this.
    assert_eq!(
        b.exec(&id, &argv(&["true"]), BOUND)
            .await
            .unwrap()
            .exit_code,
        0
    );
    b.remove_sandbox(&sb).await.unwrap();
}

#[tokio::test]
async fn start_errors_and_start_twice() {
    let f = fixture();
    let b = &f.backend;
    let sb = sandbox(b).await;
    let id = b
        .create_container(&sb, &spec("s", &["true"]))
        .await
        .unwrap();
    b.start_container(&id).await.unwrap();
    assert!(b.start_container(&id).await.is_err());
    assert_eq!(b.wait(&id).await.unwrap(), ExitStatus::Exited(0));
    // A created container removed before it ran: waiters get an error.
    let id = b
        .create_container(&sb, &spec("never", &["true"]))
        .await
        .unwrap();
    let w = b.wait(&id);
    let (w, r) = tokio::join!(w, async {
        tokio::task::yield_now().await;
        b.remove_container(&id).await
    });
    r.unwrap();
    assert!(w.is_err());
    assert!(b.start_container(&id).await.is_err());
    b.remove_sandbox(&sb).await.unwrap();
}

/// Containers must survive the thread (and runtime) that started them: the death signal
/// is tied to the backend's own spawner thread.
#[test]
fn containers_outlive_the_starting_thread() {
    let state = tempfile::tempdir().unwrap();
    let (tx, mut logs) = unbounded_channel();
    let b = std::sync::Arc::new(ProcessBackend::new(ProcessBackendConfig {
        state_dir: Some(state.path().to_path_buf()),
        logs: Some(tx),
    }));
    let (sb, id) = std::thread::spawn({
        let b = b.clone();
        move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let sb = sandbox(&b).await;
                let id = b
                    .create_container(&sb, &sh("long", "echo $$; exec sleep 1000"))
                    .await
                    .unwrap();
                b.start_container(&id).await.unwrap();
                (sb, id)
            })
        }
    })
    .join()
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let pid: i32 = first_line(&mut logs, "long").await.parse().unwrap();
        // The only non-poll check: the container is still running a while after the
        // thread that started it is gone.
        let w = tokio::time::timeout(Duration::from_millis(500), b.wait(&id)).await;
        assert!(w.is_err(), "container died with its starting thread: {w:?}");
        assert!(!dead(pid));
        b.signal(&id, 9).await.unwrap();
        assert_eq!(b.wait(&id).await.unwrap(), ExitStatus::Signaled(9));
        b.remove_sandbox(&sb).await.unwrap();
    });
    assert!(dir_is_empty(state.path()));
}

#[test]
fn dropping_the_backend_kills_and_cleans_up() {
    let state = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (tx, mut logs) = unbounded_channel();
    let b = ProcessBackend::new(ProcessBackendConfig {
        state_dir: Some(state.path().to_path_buf()),
        logs: Some(tx),
    });
    let pids: Vec<i32> = rt.block_on(async {
        let sb = b
            .create_sandbox(&sandbox_spec(vec![VolumeSpec {
                name: "v".into(),
                source: VolumeSource::EmptyDir,
            }]))
            .await
            .unwrap();
        let id = b
            .create_container(&sb, &sh("bg", "echo $$; sleep 1000 & echo $!; wait"))
            .await
            .unwrap();
        b.start_container(&id).await.unwrap();
        let got = lines_until(&mut logs, "bg", |l| l.len() >= 2).await;
        got.iter().map(|l| l.line.parse().unwrap()).collect()
    });
    drop(b);
    rt.block_on(async {
        poll_until("all container processes die", || {
            pids.iter().all(|&p| dead(p))
        })
        .await;
    });
    assert!(dir_is_empty(state.path()));
}

const HELPER_ENV: &str = "WASMHOOK_TEST_PDEATHSIG_HELPER";

/// Not a test on its own: the body of the child process of `containers_die_with_wasmhook`.
/// Starts `sleep 1000` through a backend, prints its pid, then waits to be killed.
#[test]
fn pdeathsig_helper() {
    if std::env::var_os(HELPER_ENV).is_none() {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (tx, mut logs) = unbounded_channel();
    let b = ProcessBackend::new(ProcessBackendConfig {
        state_dir: Some(std::env::var_os(HELPER_ENV).unwrap().into()),
        logs: Some(tx),
    });
    rt.block_on(async {
        let sb = sandbox(&b).await;
        let id = b
            .create_container(&sb, &sh("sleep", "echo $$; exec sleep 1000"))
            .await
            .unwrap();
        b.start_container(&id).await.unwrap();
        let pid = first_line(&mut logs, "sleep").await;
        println!("SLEEP_PID={pid}");
        use std::io::Write;
        std::io::stdout().flush().unwrap();
        std::future::pending::<()>().await;
    });
}

#[test]
fn containers_die_with_wasmhook() {
    let state = tempfile::tempdir().unwrap();
    let mut helper = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "pdeathsig_helper",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_ENV, state.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = helper.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            // libtest may print "test pdeathsig_helper ... " on the same line.
            if let Some((_, pid)) = line.split_once("SLEEP_PID=") {
                let _ = tx.send(pid.trim().parse::<i32>().unwrap());
            }
        }
    });
    let pid = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(pid) => pid,
        Err(e) => {
            let _ = helper.kill();
            let _ = helper.wait();
            panic!("helper never reported the container pid: {e}");
        }
    };
    assert!(!dead(pid), "the container is not running");
    helper.kill().unwrap(); // SIGKILL: no destructor runs in the helper.
    helper.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !dead(pid) {
        assert!(
            Instant::now() < deadline,
            "container {pid} outlived its killed parent"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

// A SIGKILLed wasmhook leaves its sandbox directory; the next backend on the same state dir
// sweeps it on its first `create_sandbox`, but keeps directories whose owner still lives and
// directories without an owner file.
#[tokio::test]
async fn first_create_sandbox_sweeps_sandboxes_of_dead_owners() {
    let f = fixture();
    let mut c = std::process::Command::new("true").spawn().unwrap();
    let dead = c.id();
    c.wait().unwrap();
    let stale = f.state.path().join("wasmhook-old-AAAAAA");
    std::fs::create_dir_all(stale.join("volumes/data")).unwrap();
    std::fs::write(stale.join("volumes/data/f"), "x").unwrap();
    std::fs::write(stale.join("owner"), format!("{dead} 12345\n")).unwrap();
    // Our own pid with another start time: a recycled pid, so stale too.
    let recycled = f.state.path().join("wasmhook-recycled-BBBBBB");
    std::fs::create_dir_all(&recycled).unwrap();
    let me = std::process::id();
    std::fs::write(recycled.join("owner"), format!("{me} 1\n")).unwrap();
    // Owned by this (live) process, with its real start time.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let start = stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .nth(19)
        .unwrap()
        .to_string();
    let live = f.state.path().join("wasmhook-live-CCCCCC");
    std::fs::create_dir_all(&live).unwrap();
    std::fs::write(live.join("owner"), format!("{me} {start}\n")).unwrap();
    let unowned = f.state.path().join("wasmhook-unowned-DDDDDD");
    std::fs::create_dir_all(&unowned).unwrap();

    let sb = f
        .backend
        .create_sandbox(&sandbox_spec(vec![]))
        .await
        .unwrap();
    assert!(!stale.exists(), "the dead owner's sandbox was not swept");
    assert!(
        !recycled.exists(),
        "the recycled pid's sandbox was not swept"
    );
    assert!(live.exists(), "a live owner's sandbox was swept");
    assert!(unowned.exists(), "a sandbox without owner file was swept");
    let own =
        std::fs::read_to_string(Path::new(&f.state.path().join(&sb.id)).join("owner")).unwrap();
    assert_eq!(own, format!("{me} {start}\n"));
    f.backend.remove_sandbox(&sb).await.unwrap();
}

/// Children start with the signal state a fresh process has, whatever handlers and mask the
/// backend's own process has: nothing blocked, nothing caught, SIGPIPE not ignored (Rust
/// ignores it in its own processes). The backend starts children in its own memory until
/// `execve` (clone with CLONE_VM), so this is what keeps our handlers out of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_start_with_default_signal_state() {
    // A handler in this process, as the CLI installs for SIGINT and SIGTERM.
    let _sigint =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).unwrap();
    let mut f = fixture();
    let id = running_sleeper(&mut f).await;
    let b = &f.backend;
    let out = b
        .exec(&id, &["cat".into(), "/proc/self/status".into()], BOUND)
        .await
        .unwrap();
    let status = String::from_utf8(out.stdout).unwrap();
    let mask = |field: &str| {
        let line = status
            .lines()
            .find(|l| l.starts_with(field))
            .unwrap_or_else(|| panic!("{field} in {status}"));
        u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    assert_eq!(mask("SigBlk:"), 0, "blocked signals in the child");
    assert_eq!(mask("SigCgt:"), 0, "caught signals in the child");
    let sigpipe = 1u64 << (13 - 1);
    assert_eq!(mask("SigIgn:") & sigpipe, 0, "SIGPIPE ignored in the child");
    b.remove_container(&id).await.unwrap();
}

/// Children inherit none of our descriptors, not even one without close-on-exec (Linux 5.9+:
/// the backend gives each child a table of its own stdio only).
#[tokio::test]
async fn children_inherit_no_descriptors() {
    let devnull = std::fs::File::open("/dev/null").unwrap();
    // A descriptor without close-on-exec, at a number no shell uses for itself.
    const LEAKY: i32 = 900;
    // SAFETY: dup2 onto a number this test owns; closed at the end.
    assert_eq!(
        unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&devnull), LEAKY) },
        LEAKY
    );
    let mut f = fixture();
    let id = running_sleeper(&mut f).await;
    let b = &f.backend;
    let script = format!("if [ -e /proc/self/fd/{LEAKY} ]; then echo leaked; else echo clean; fi");
    let out = b
        .exec(&id, &["sh".into(), "-c".into(), script], BOUND)
        .await
        .unwrap();
    // SAFETY: closes only the descriptor this test made.
    unsafe { libc::close(LEAKY) };
    assert_eq!(String::from_utf8_lossy(&out.stdout), "clean\n");
    b.remove_container(&id).await.unwrap();
}
