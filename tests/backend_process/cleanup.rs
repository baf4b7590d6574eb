//! Nothing outlives wasmhook: dropping the backend, SIGKILL (parent-death signal), the
//! next backend's sweep; what children inherit.

use super::*;

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
            "cleanup::pdeathsig_helper",
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
