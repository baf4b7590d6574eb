//! Native exec in a running container, starting errors, and containers that outlive the
//! thread that started them.

use super::*;

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
