//! `wasmhook cri` as an operator runs it, without a runtime behind it (no root needed): the
//! socket (stale one replaced, mode 0660, a live one never taken over), `Unavailable` while
//! containerd is not there, and a clean exit on SIGTERM that leaves no socket behind.
//! The calls themselves, against a real containerd, are in `tests/cri_proxy/`.

mod common;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::cri::{VersionRequest, VersionResponse};
use wasmhook::cri::upstream::Upstream;
use wasmhook::grpc::Code;

fn start(listen: &str, runtime: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_wasmhook"))
        .args([
            "--no-cache",
            "cri",
            "--listen",
            listen,
            "--runtime-endpoint",
        ])
        .arg(format!("unix://{}", runtime.display()))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wasmhook cri starts")
}

/// Wait (bounded) for `f` to hold.
fn wait_for(what: &str, bound: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < bound, "{what} not within {bound:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn exit_within(child: &mut Child, bound: Duration) -> std::process::ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if t.elapsed() > bound {
            let _ = child.kill();
            panic!("wasmhook cri did not exit within {bound:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `Version` call through the proxy at `sock`, on a client that is gone when it returns
/// (as a stopped kubelet's: an idle client still there would get GOAWAY and close).
fn version_through(sock: &Path) -> Result<VersionResponse, wasmhook::grpc::Status> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        Upstream::new(sock)
            .unary::<VersionResponse>(
                "/runtime.v1.RuntimeService/Version",
                &VersionRequest::default(),
                Duration::from_secs(20),
            )
            .await
    })
}

/// SIGTERM the proxy; its exit status (within 20 s) and everything it wrote to stderr.
fn sigterm(proxy: &mut Child) -> (std::process::ExitStatus, String) {
    rustix::process::kill_process(
        rustix::process::Pid::from_child(proxy),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = exit_within(proxy, Duration::from_secs(20));
    let mut err = String::new();
    std::io::Read::read_to_string(proxy.stderr.as_mut().unwrap(), &mut err).unwrap();
    (status, err)
}

#[test]
fn cri_replaces_a_stale_socket_answers_unavailable_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("run/wasmhook/cri.sock");
    let runtime = dir.path().join("containerd.sock");
    // A stale socket: its listener is gone (a proxy that was SIGKILLed).
    std::fs::create_dir_all(sock.parent().unwrap()).unwrap();
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(std::fs::metadata(&sock).unwrap().file_type().is_socket());
    // A sibling test's `pre_exec` child is a fork of this process: until it execs, it holds
    // a copy of the listener, and a connect succeeds. Stale means refused.
    wait_for(
        "the stale socket to refuse",
        Duration::from_secs(20),
        || std::os::unix::net::UnixStream::connect(&sock).is_err(),
    );

    let mut proxy = start(&format!("unix://{}", sock.display()), &runtime);
    wait_for("the proxy's socket", Duration::from_secs(20), || {
        std::os::unix::net::UnixStream::connect(&sock).is_ok()
    });
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);

    // A second proxy on a live socket refuses, and leaves the first one's socket alone.
    let mut second = start(sock.to_str().unwrap(), &runtime);
    let status = exit_within(&mut second, Duration::from_secs(20));
    let mut err = String::new();
    std::io::Read::read_to_string(second.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("another process is listening"), "{err}");
    assert!(std::os::unix::net::UnixStream::connect(&sock).is_ok());

    // No containerd: every call answers Unavailable with grpc-go's dial wording.
    let e = version_through(&sock).expect_err("no runtime behind the proxy");
    assert_eq!(e.code, Code::Unavailable, "{e}");
    assert!(e.message.contains("dial unix"), "{e}");

    // SIGTERM: a clean exit, the socket removed.
    let (status, err) = sigterm(&mut proxy);
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(!sock.exists(), "socket left after SIGTERM");
    assert!(err.contains("shutting down"), "{err}");
}

/// Started by systemd's socket activation: the proxy serves the socket it was handed (fd 3,
/// `LISTEN_PID`/`LISTEN_FDS`), and leaves it in place at shutdown (systemd owns it, so calls
/// made while the proxy restarts wait instead of failing).
#[test]
fn cri_serves_a_socket_handed_over_by_systemd() {
    use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;

    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("cri.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let raw = listener.as_raw_fd();
    let mut cmd = Command::new("sh");
    // `exec` keeps the shell's pid, so `$$` is the proxy's pid, as systemd sets it.
    cmd.args([
        "-c",
        r#"LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" --no-cache cri --listen "$1" --runtime-endpoint "$2""#,
        env!("CARGO_BIN_EXE_wasmhook"),
    ])
    .arg(&sock)
    .arg(dir.path().join("containerd.sock"))
    .env("RUST_LOG", "info")
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls (dup2, fcntl) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let from = BorrowedFd::borrow_raw(raw);
            if raw == 3 {
                rustix::io::fcntl_setfd(from, rustix::io::FdFlags::empty())?;
            } else {
                let mut to = OwnedFd::from_raw_fd(3);
                rustix::io::dup2(from, &mut to)?;
                std::mem::forget(to);
            }
            Ok(())
        });
    }
    let mut proxy = cmd.spawn().expect("wasmhook cri starts");
    drop(listener);

    // Connecting works from the start (the socket was listening before the proxy ran); the
    // call is answered once the proxy serves.
    let e = version_through(&sock).expect_err("no runtime behind the proxy");
    assert_eq!(e.code, Code::Unavailable, "{e}");
    let (status, err) = sigterm(&mut proxy);
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.contains("socket_activation=true"), "{err}");
    assert!(
        sock.exists(),
        "the activated socket belongs to systemd: kept"
    );
}
