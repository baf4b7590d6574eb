//! Stopping (SIGTERM, then SIGKILL), native exec, and clean-up when the backend is dropped;
//! one pod through the CLI.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_handled_ignored_then_sigkill() {
    if !runc_ready() {
        return;
    }
    let mut f = Fixture::new();
    let sb = f.sandbox(&[]).await;
    // A TERM handler: graceful exit with its own code.
    let graceful = f
        .b()
        .create_container(
            &sb,
            &sh(
                "graceful",
                "trap 'exit 7' TERM; while true; do sleep 0.1; done",
            ),
        )
        .await
        .unwrap();
    f.b().start_container(&graceful).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    f.b().signal(&graceful, 15).await.unwrap();
    let st = tokio::time::timeout(Duration::from_secs(10), f.b().wait(&graceful))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(st, ExitStatus::Exited(7));
    // No handler, PID 1: SIGTERM is ignored, SIGKILL is not.
    let stubborn = f
        .b()
        .create_container(&sb, &sh("stubborn", "trap '' TERM; sleep 1000"))
        .await
        .unwrap();
    f.b().start_container(&stubborn).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    f.b().signal(&stubborn, 15).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(700), f.b().wait(&stubborn))
            .await
            .is_err(),
        "SIGTERM should be ignored"
    );
    f.b().signal(&stubborn, 9).await.unwrap();
    let st = tokio::time::timeout(Duration::from_secs(10), f.b().wait(&stubborn))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(st, ExitStatus::Signaled(9));
    assert_eq!(st.code(), 137);
    // Signalling and removing an exited container succeed.
    f.b().signal(&stubborn, 15).await.unwrap();
    f.b().remove_container(&stubborn).await.unwrap();
    f.b().remove_container(&graceful).await.unwrap();
    f.b().remove_sandbox(&sb).await.unwrap();
    f.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_exec() {
    if !runc_ready() {
        return;
    }
    let mut f = Fixture::new();
    let sb = f.sandbox(&[]).await;
    let mut spec = sh("app", "echo ready > /tmp/state; sleep 1000");
    spec.env = vec![("APP_MODE".into(), "test".into())];
    let id = f.b().create_container(&sb, &spec).await.unwrap();
    f.b().start_container(&id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let argv = |s: &str| vec!["sh".to_string(), "-c".to_string(), s.to_string()];
    let out = f
        .b()
        .exec(
            &id,
            &argv("cat /tmp/state; echo $APP_MODE; echo err >&2; exit 4"),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, 4);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ready\ntest\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    let t = std::time::Instant::now();
    let e = f
        .b()
        .exec(&id, &argv("sleep 100"), Duration::from_millis(500))
        .await
        .unwrap_err();
    assert_eq!(e.0, "command timed out");
    assert!(t.elapsed() < Duration::from_secs(5));
    let e = f
        .b()
        .exec(
            &id,
            &["no-such-binary".to_string()],
            Duration::from_secs(10),
        )
        .await
        .unwrap_err();
    assert!(e.0.contains("no-such-binary"), "{e}");
    // The container is still fine; removing the sandbox kills it.
    f.b().remove_sandbox(&sb).await.unwrap();
    assert!(f.b().wait(&id).await.is_err());
    f.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_removes_everything() {
    if !runc_ready() {
        return;
    }
    let mut f = Fixture::new();
    let sb = f.sandbox(&["v"]).await;
    let mut spec = sh("long", "sleep 1000");
    spec.mounts = vec![mount(&sb, "v", "/v", false)];
    spec.memory_limit = Some(64 << 20);
    spec.cpu_limit_millis = Some(500);
    let id = f.b().create_container(&sb, &spec).await.unwrap();
    f.b().start_container(&id).await.unwrap();
    let root = f.b().runc_root();
    let backend = f.backend.take().unwrap();
    drop(backend);
    let out = Command::new("runc")
        .arg("--root")
        .arg(&root)
        .args(["list", "-q"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "");
    for ns in &f.netns {
        assert!(!ns.exists());
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&*f.state.path().to_string_lossy()));
}

#[test]
fn pod_through_the_cli() {
    if !runc_ready() {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let (records, stdout) = run_pod_json_in(
        state.path(),
        &root().join("examples/pods/runc-sidecar.yaml"),
        "3s",
    );
    let has = |f: &dyn Fn(&serde_json::Value) -> bool| records.iter().any(f);
    for (reason, container) in [
        ("Created", "server"),
        ("Started", "server"),
        ("Created", "writer"),
        ("Started", "writer"),
        ("Killing", "writer"),
    ] {
        assert!(
            has(&|r| r["reason"] == reason && r["container"] == container),
            "{reason} {container}:\n{stdout}"
        );
    }
    assert!(
        !has(&|r| r["type"] == "Warning"),
        "no warnings expected:\n{stdout}"
    );
    let hook = |c: &str, h: &str, handler: &str| {
        has(&|r| {
            r["kind"] == "HookResult"
                && r["container"] == c
                && r["hook"] == h
                && r["handler"] == handler
                && r["success"] == true
        })
    };
    assert!(hook("server", "postStart", "exec"), "{stdout}");
    assert!(hook("writer", "postStart", "httpGet"), "{stdout}");
    assert!(hook("writer", "preStop", "exec"), "{stdout}");
    // The writer read the wasm hook's message through the pod's loopback, and its SIGTERM
    // handler ran.
    assert!(
        has(&|r| r["kind"] == "Log"
            && r["container"] == "writer"
            && r["line"] == "written by wasm"),
        "{stdout}"
    );
    assert!(
        has(&|r| r["kind"] == "Log" && r["container"] == "writer" && r["line"] == "bye"),
        "{stdout}"
    );
    let status = records.last().unwrap();
    assert_eq!(status["kind"], "PodStatus");
    assert_eq!(status["phase"], "Succeeded", "{stdout}");
    for c in status["containers"].as_array().unwrap() {
        assert_eq!(c["exitCode"], 0, "{stdout}");
    }
    let list = Command::new("runc")
        .arg("--root")
        .arg(state.path().join("runc"))
        .args(["list", "-q"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&list.stdout).contains("runc-sidecar"),
        "containers left"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let sandbox = state.path().join("sandboxes/runc-sidecar");
    assert!(!mounts.contains(&*sandbox.to_string_lossy()), "{mounts}");
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&netns.stdout).contains("wasmhook-runc-sidecar"));
}
