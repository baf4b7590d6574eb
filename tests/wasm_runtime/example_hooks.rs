//! The example hooks (preview 1 modules, preview 2 commands, typed components) run.

use super::*;

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/hooks/bin")
        .join(name)
}

fn identity(kind: HookKind) -> Option<HookIdentity> {
    Some(HookIdentity {
        pod: PodRef {
            name: "web".into(),
            namespace: "default".into(),
            uid: "u1".into(),
        },
        container: "app".into(),
        kind,
    })
}

#[tokio::test]
async fn example_hooks_run_as_p1_modules_p2_commands_and_typed_components() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    for (module, kind) in [
        ("write-message.wasm", ModuleKind::P1Command),
        ("write-message.component.wasm", ModuleKind::P2Command),
    ] {
        let m = rt.load_file(&example(module)).unwrap();
        assert_eq!(m.kind(), kind, "{module}");
        let mut call = inv(&[module, "/data/msg.txt", "hello", module]);
        call.preopens = vec![preopen(dir.path(), false)];
        call.identity = identity(HookKind::PostStart);
        let out = rt.run(&m, call).await;
        assert_eq!(out.status, ExecStatus::Success, "{module}: {out:?}");
        let written = std::fs::read_to_string(dir.path().join("msg.txt")).unwrap();
        assert_eq!(written, format!("hello {module}\n"));

        // Missing argument: the SDK's error becomes a non-zero exit (p2 carries only "err").
        let mut call = inv(&[module]);
        call.identity = identity(HookKind::PostStart);
        let out = rt.run(&m, call).await;
        assert!(
            matches!(out.status, ExecStatus::Exited(n) if n > 0),
            "{module}: {:?}",
            out.status
        );
    }

    let typed = rt.load_file(&example("typed.component.wasm")).unwrap();
    assert_eq!(typed.kind(), ModuleKind::TypedHook);
    let mut call = inv(&["typed.component.wasm"]);
    call.preopens = vec![preopen(dir.path(), false)];
    call.identity = identity(HookKind::PreStop);
    let out = rt.run(&typed, call).await;
    assert_eq!(out.status, ExecStatus::Success, "{out:?}");
    let written = std::fs::read_to_string(dir.path().join("typed-hook.txt")).unwrap();
    assert!(
        written.contains("app") && written.contains("pre"),
        "{written}"
    );

    let mut call = inv(&["typed.component.wasm", "fail", "on", "purpose"]);
    call.preopens = vec![preopen(dir.path(), false)];
    call.identity = identity(HookKind::PreStop);
    let out = rt.run(&typed, call).await;
    match out.status {
        ExecStatus::Failed(msg) => assert!(msg.contains("on purpose"), "{msg}"),
        other => panic!("expected the typed hook's err, got {other:?}"),
    }
}
