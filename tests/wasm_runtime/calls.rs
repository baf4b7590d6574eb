//! One call: exit codes, output, argv and environment, preopens, and a pooled slot that
//! starts pristine.

use super::*;

#[tokio::test]
async fn success_and_exit_codes() {
    let rt = runtime();
    let ok = rt.run(&load(&rt, "noop.wat"), inv(&["noop.wasm"])).await;
    assert_eq!(ok.status, ExecStatus::Success);
    assert_eq!(ok.exit_code(), Some(0));

    let three = rt.run(&load(&rt, "exit3.wat"), inv(&["exit3.wasm"])).await;
    assert_eq!(three.status, ExecStatus::Exited(3));
    assert_eq!(three.exit_code(), Some(3));
    assert_eq!(three.status.to_string(), "exited with code 3");
    assert_eq!(three.output.stderr, b"not ready yet\n");
}

// A pooled slot is reset between calls: `dirty.wat` exits 1 unless its memory is pristine
// (zero, its data segment intact, in the page kept resident, the page past it and a grown
// page) and then dirties all of it. Calls one after another reuse the same warm slot; calls
// at once spread over several.
#[tokio::test]
async fn a_reused_pool_slot_starts_from_pristine_memory() {
    let rt = runtime();
    let dirty = load(&rt, "dirty.wat");
    for i in 0..20 {
        let out = rt.run(&dirty, inv(&["dirty.wasm"])).await;
        assert_eq!(out.status, ExecStatus::Success, "sequential call {i}");
    }
    for round in 0..5 {
        let calls = (0..16).map(|_| rt.run(&dirty, inv(&["dirty.wasm"])));
        for out in futures::future::join_all(calls).await {
            assert_eq!(out.status, ExecStatus::Success, "round {round}");
        }
    }
}

#[tokio::test]
async fn stdout_and_stderr_interleave_in_write_order() {
    let rt = runtime();
    let out = rt.run(&load(&rt, "hello.wat"), inv(&["hello.wasm"])).await;
    assert_eq!(out.output.combined, b"out 1\nerr\nout 2\n");
    assert_eq!(out.output.stderr, b"err\n");
    assert!(!out.truncated());
}

#[tokio::test]
async fn argv_and_env_are_exactly_what_was_given() {
    let rt = runtime();
    let mut call = inv(&["dump.wasm", "a b", "--flag"]);
    call.env = vec![
        ("GREETING".into(), "hello world".into()),
        ("WASMHOOK_POD".into(), "spoofed".into()),
    ];
    call.identity = Some(HookIdentity {
        pod: PodRef {
            name: "web".into(),
            namespace: "default".into(),
            uid: "u1".into(),
        },
        container: "app".into(),
        kind: HookKind::PreStop,
    });
    let out = rt.run(&load(&rt, "dump.wat"), call).await;
    assert_eq!(out.status, ExecStatus::Success);
    let split = out.output.combined.iter().position(|b| *b == 0xff).unwrap();
    let (args, env) = (
        &out.output.combined[..split],
        &out.output.combined[split + 1..],
    );
    assert_eq!(args, b"dump.wasm\0a b\0--flag\0");
    let env: Vec<&str> = std::str::from_utf8(env)
        .unwrap()
        .split('\0')
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(
        env,
        [
            "GREETING=hello world",
            "WASMHOOK_POD=web",
            "WASMHOOK_NAMESPACE=default",
            "WASMHOOK_CONTAINER=app",
            "WASMHOOK_HOOK=preStop"
        ],
        "the host's environment must not leak, and WASMHOOK_* win clashes"
    );
}

#[tokio::test]
async fn writes_into_a_preopen_and_honours_read_only() {
    let rt = runtime();
    let module = load(&rt, "open.wat");
    let dir = tempfile::tempdir().unwrap();

    let mut call = inv(&["open.wasm", "message.txt"]);
    call.preopens = vec![preopen(dir.path(), false)];
    let out = rt.run(&module, call).await;
    assert_eq!(out.status, ExecStatus::Success, "{:?}", out);
    assert_eq!(
        std::fs::read(dir.path().join("message.txt")).unwrap(),
        b"ok\n"
    );

    let mut call = inv(&["open.wasm", "other.txt"]);
    call.preopens = vec![preopen(dir.path(), true)];
    let out = rt.run(&module, call).await;
    assert!(
        matches!(out.status, ExecStatus::Exited(n) if n > 0),
        "{:?}",
        out.status
    );
    assert!(!dir.path().join("other.txt").exists());
}

#[tokio::test]
async fn escapes_from_a_preopen_are_denied() {
    let rt = runtime();
    let module = load(&rt, "open.wat");
    let root = tempfile::tempdir().unwrap();
    let volume = root.path().join("volume");
    let outside = root.path().join("outside");
    std::fs::create_dir_all(&volume).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, volume.join("link-dir")).unwrap();
    std::os::unix::fs::symlink(outside.join("target.txt"), volume.join("link-file")).unwrap();
    std::os::unix::fs::symlink("../outside", volume.join("relative-link")).unwrap();

    for path in [
        "../outside/escaped.txt",
        "/tmp/escaped.txt",
        "link-dir/escaped.txt",
        "link-file",
        "relative-link/escaped.txt",
        "sub/../../outside/escaped.txt",
    ] {
        let mut call = inv(&["open.wasm", path]);
        call.preopens = vec![preopen(&volume, false)];
        let out = rt.run(&module, call).await;
        assert!(
            matches!(out.status, ExecStatus::Exited(n) if n > 0),
            "{path}: {:?}",
            out.status
        );
    }
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing written outside"
    );
    assert!(!Path::new("/tmp/escaped.txt").exists());
}
