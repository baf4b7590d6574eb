//! Hooks written in Python (componentize-py) and JavaScript (componentize-js), through the
//! binary, in a pod: the typed context arrives (pod, namespace, container, args, env,
//! volumes), postStart and preStop run in order, `err` fails the hook with its message, and
//! the limits stop them like any hook (timeout, memory, and a memory limit too low to start
//! says so).
//!
//! The components are built, not committed (`scripts/install-hook-tools.sh`, then
//! `scripts/build-script-hooks.sh`); without them these tests skip, unless
//! `WASMHOOK_REQUIRE_SCRIPT_HOOKS` is set (CI), which makes them fail. Every run shares one
//! compile cache, so each component is compiled once per machine, at the pod's admission
//! (never inside a hook's deadline).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn component(language: &str) -> Option<PathBuf> {
    let path = root().join(format!(
        "examples/hooks/build/{language}-hook.component.wasm"
    ));
    let problem = (!path.is_file()).then(|| {
        format!(
            "{} is not built: scripts/install-hook-tools.sh && scripts/build-script-hooks.sh",
            path.display()
        )
    });
    common::can_run(
        "script hook test",
        &["WASMHOOK_REQUIRE_SCRIPT_HOOKS"],
        problem,
    )
    .then_some(path)
}

/// One pod, one container per case, the component as every hook. `data` is a hostPath
/// volume on `dir`, so the test reads what the hooks wrote.
fn pod_yaml(hook: &Path, dir: &Path) -> String {
    let hook = hook.display();
    let container = |name: &str, arg: Option<&str>, pre_stop: bool| {
        let arg = arg.map(|a| format!(", \"{a}\"")).unwrap_or_default();
        let pre_stop = if pre_stop {
            format!("      preStop:\n        exec:\n          command: [\"{hook}\", \"5s\"]\n")
        } else {
            String::new()
        };
        format!(
            "  - name: {name}\n    image: busybox\n    command: [/bin/sh, -c, \"trap 'exit 0' TERM; touch data/drained; while true; do sleep 0.1; done\"]\n    env:\n    - {{name: GREETING, value: hi}}\n    volumeMounts:\n    - {{name: data, mountPath: /data}}\n    lifecycle:\n      postStart:\n        exec:\n          command: [\"{hook}\"{arg}]\n{pre_stop}"
        )
    };
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: script-hooks\n  annotations:\n    wasmhook.dev/hook-max-memory: 96Mi\n    wasmhook.dev/hook-timeout.spin: 2s\n    wasmhook.dev/hook-max-memory.hog: 128Mi\n    wasmhook.dev/hook-max-memory.small: 4Mi\nspec:\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 10\n  volumes:\n  - name: data\n    hostPath: {{path: {dir}}}\n  containers:\n{app}{fail}{spin}{hog}{small}",
        dir = dir.display(),
        app = container("app", None, true),
        fail = container("fail", Some("fail"), false),
        spin = container("spin", Some("spin"), false),
        hog = container("hog", Some("hog"), false),
        small = container("small", None, false),
    )
}

/// Run the pod until stopped after 3 s; its JSON records.
fn run_pod(yaml: &str, dir: &Path) -> Vec<Value> {
    let pod = dir.join("pod.yaml");
    std::fs::write(&pod, yaml).unwrap();
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("script-hooks-cache");
    let out = Command::new(env!("CARGO_BIN_EXE_wasmhook"))
        .arg("--cache-dir")
        .arg(&cache)
        .args(["run", "--stop-after", "3s", "--output", "json"])
        .arg(&pod)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(1),
        "{out:?}"
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn hook<'a>(records: &'a [Value], container: &str, kind: &str) -> &'a Value {
    records
        .iter()
        .find(|r| r["kind"] == "HookResult" && r["container"] == container && r["hook"] == kind)
        .unwrap_or_else(|| panic!("no {kind} of {container} in {records:#?}"))
}

fn error(record: &Value) -> String {
    assert_eq!(record["success"], false, "{record:#}");
    record["error"].as_str().unwrap().to_string()
}

fn check(language: &str) {
    let Some(hook_path) = component(language) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let records = run_pod(&pod_yaml(&hook_path, &data), dir.path());

    // The context: pod, namespace, container and env (printed by the hook), its volume at its
    // mount path (the file it wrote); then the preStop after the postStart, with its argument
    // (a 5 s bound) and the app's `drained` file.
    let post = hook(&records, "app", "postStart");
    assert_eq!(post["success"], true, "{post:#}");
    assert!(
        post["output"]
            .as_str()
            .unwrap()
            .contains("/data/message.txt for default/script-hooks/app (GREETING=hi)"),
        "{post:#}"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("message.txt")).unwrap(),
        format!("app postStart by {language}\n")
    );
    let pre = hook(&records, "app", "preStop");
    assert_eq!(pre["success"], true, "{pre:#}");
    assert!(
        pre["output"]
            .as_str()
            .unwrap()
            .contains("/data/drained appeared"),
        "{pre:#}"
    );
    let at = |r: &Value| records.iter().position(|x| x == r).unwrap();
    assert!(at(post) < at(pre));

    // `err(message)` fails the hook with the message, as the kubelet reports a failed exec.
    let failed = error(hook(&records, "fail", "postStart"));
    assert!(failed.contains("asked to fail"), "{failed}");
    assert!(
        records
            .iter()
            .any(|r| r["reason"] == "FailedPostStartHook" && r["container"] == "fail"),
        "{records:#?}"
    );
    // The limits stop them like any hook.
    let spun = error(hook(&records, "spin", "postStart"));
    assert!(spun.contains("stopped: timed out after 2s"), "{spun}");
    let hogged = error(hook(&records, "hog", "postStart"));
    assert!(
        hogged.contains("stopped: memory limit of 128 MiB exceeded"),
        "{hogged}"
    );
    let small = error(hook(&records, "small", "postStart"));
    assert!(
        small.contains("stopped: memory limit of 4 MiB is below the")
            && small.contains("this module needs to start: raise wasmhook.dev/hook-max-memory"),
        "{small}"
    );
}

#[test]
fn python_hooks_in_a_pod() {
    check("python");
}

#[test]
fn javascript_hooks_in_a_pod() {
    check("js");
}
