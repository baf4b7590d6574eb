//! A container is a process group: exit codes and signals, waiting, its environment and
//! working directory, its output, and commands that cannot start.

use super::*;

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
