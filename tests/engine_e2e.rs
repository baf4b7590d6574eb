//! End-to-end tests of the lifecycle engine through the `wasmhook run` binary
//! (`lifecycle-semantics.md` §4–§8): event order and messages, hook reports, grace
//! arithmetic, sidecar stop order, restart policies, invalid manifests, and signals.
//!
//! Every test runs the binary with `--output json --no-cache`, a private `TMPDIR` (so the
//! process backend's sandbox directories land in a per-test directory) and a bounded wait.
//! Timing assertions are generous: this runs on a shared, loaded machine.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use common::run::*;
use common::TempDir;

// 1. Init container, sidecar, app: start order, completion, sidecar stop.
#[test]
fn init_sidecar_app_runs_in_order_and_completes() {
    let tmp = TempDir::new("init");
    let r = run(tmp.path(), &[path_str(&example("init-sidecar-app.yaml"))]);
    assert_eq!(r.code(), Some(0), "{}", r.dump());
    assert_eq!(
        r.sequence(),
        pairs(&[
            ("Created", "fetch-config"),
            ("Started", "fetch-config"),
            ("Created", "log-shipper"),
            ("Started", "log-shipper"),
            ("Created", "app"),
            ("Started", "app"),
            ("Killing", "log-shipper"),
        ]),
        "{}",
        r.dump()
    );
    let events = r.events();
    assert_eq!(events[0]["message"], "Created container: fetch-config");
    assert_eq!(events[1]["message"], "Started container fetch-config");
    assert_eq!(events[6]["message"], "Stopping container log-shipper");
    assert!(events.iter().all(|e| e["type"] == "Normal"), "{}", r.dump());

    for (c, h) in [
        ("log-shipper", "postStart"),
        ("app", "postStart"),
        ("log-shipper", "preStop"),
    ] {
        let hook = r.hook(c, h);
        assert_eq!(hook["success"], true, "{c} {h}: {hook}");
        assert_eq!(hook["handler"], "exec");
        assert!(hook["error"].is_null());
    }
    // The sidecar's postStart finished before the app was created (§4: serial starts).
    let lines = r.lines();
    let pos = |pred: &dyn Fn(&Value) -> bool| lines.iter().position(pred).unwrap();
    let sidecar_hook = pos(&|v| {
        v["kind"] == "HookResult" && v["container"] == "log-shipper" && v["hook"] == "postStart"
    });
    let app_created = pos(&|v| v["reason"] == "Created" && v["container"] == "app");
    assert!(sidecar_hook < app_created, "{}", r.dump());

    let st = r.pod_status("init-demo");
    assert_eq!(st["phase"], "Succeeded");
    assert_eq!(st["stopRequested"], false);
    for c in ["fetch-config", "log-shipper", "app"] {
        let cs = r.container_status("init-demo", c);
        assert_eq!(cs["state"], "terminated", "{c}: {cs}");
        assert_eq!(cs["exitCode"], 0, "{c}: {cs}");
        assert_eq!(cs["restartCount"], 0, "{c}: {cs}");
    }
    assert_eq!(
        r.container_status("init-demo", "log-shipper")["role"],
        "sidecar"
    );
    assert!(sandboxes(tmp.path()).is_empty(), "sandbox left behind");
}

// 2. A failing postStart: FailedPostStartHook, Killing FailedPostStartHook, an immediate
// restart, then BackOff.
#[test]
fn failing_post_start_kills_restarts_and_backs_off() {
    let tmp = TempDir::new("crash");
    let r = run(
        tmp.path(),
        &[
            path_str(&example("failing-poststart.yaml")),
            "--backoff-scale",
            "0.02",
            "--stop-after",
            "3s",
        ],
    );
    // Stopped on request, no SIGKILL needed: "stopped cleanly".
    assert_eq!(r.code(), Some(0), "{}", r.dump());
    let seq = r.sequence();
    let expected = pairs(&[
        ("Created", "app"),
        ("Started", "app"),
        ("FailedPostStartHook", "app"),
        ("Killing", "app"),
        // The first restart is immediate: no BackOff before it.
        ("Created", "app"),
        ("Started", "app"),
        ("FailedPostStartHook", "app"),
        ("Killing", "app"),
        ("BackOff", "app"),
    ]);
    assert!(seq.len() >= expected.len(), "{}", r.dump());
    assert_eq!(seq[..expected.len()], expected[..], "{}", r.dump());

    let events = r.events();
    for e in &events {
        match e["reason"].as_str().unwrap() {
            "FailedPostStartHook" => {
                assert_eq!(e["message"], "PostStartHook failed");
                assert_eq!(e["type"], "Warning");
            }
            "Killing" => assert_eq!(e["message"], "FailedPostStartHook"),
            "BackOff" => {
                assert_eq!(e["type"], "Warning");
                let m = s(&e["message"]);
                assert!(
                    m.starts_with(
                        "Back-off restarting failed container app in pod crashloop_default("
                    ),
                    "BackOff message: {m}"
                );
                assert!(m.ends_with(')'), "BackOff message: {m}");
            }
            "Created" | "Started" => {}
            other => panic!("unexpected event {other}\n{}", r.dump()),
        }
    }

    let hooks = r.hooks();
    assert!(hooks.len() >= 2, "{}", r.dump());
    for h in &hooks {
        assert_eq!(h["hook"], "postStart");
        assert_eq!(h["success"], false);
        let err = s(&h["error"]);
        assert!(
            err.contains(
                "command '../hooks/bin/fail.wat' exited with 3: error: failing on purpose"
            ),
            "HookResult error: {err}"
        );
        assert!(
            err.starts_with("Exec lifecycle hook ([../hooks/bin/fail.wat]) for Container \"app\" in Pod \"crashloop_default("),
            "HookResult error: {err}"
        );
        assert_eq!(h["output"], "error: failing on purpose\n");
    }

    let st = r.pod_status("crashloop");
    assert_eq!(st["stopRequested"], true);
    let cs = r.container_status("crashloop", "app");
    let restarts = cs["restartCount"].as_u64().unwrap();
    assert!(restarts >= 2, "restartCount {restarts}: {cs}");
    // One restart per start after the first.
    let starts = seq.iter().filter(|(r, _)| r == "Started").count() as u64;
    assert_eq!(restarts + 1, starts, "{}", r.dump());
    assert!(sandboxes(tmp.path()).is_empty(), "sandbox left behind");
}

// 3a. Grace arithmetic: grace 5, preStop 3 s, SIGTERM ignored: SIGKILL after 5 - 3 = 2 s.
#[test]
fn grace_period_ends_in_sigkill_for_a_container_ignoring_sigterm() {
    let tmp = TempDir::new("grace-kill");
    let r = run(
        tmp.path(),
        &[
            path_str(&fixture("grace-ignores-term.yaml")),
            "--stop-after",
            "1s",
        ],
    );
    // SIGKILLed: not a clean stop.
    assert_eq!(r.code(), Some(1), "{}", r.dump());
    assert_eq!(
        r.sequence(),
        pairs(&[
            ("Created", "stubborn"),
            ("Started", "stubborn"),
            ("Killing", "stubborn"),
        ]),
        "{}",
        r.dump()
    );
    let killing = r.events()[2].clone();
    assert_eq!(killing["message"], "Stopping container stubborn");
    let pre_stop = r.hook("stubborn", "preStop");
    assert_eq!(pre_stop["success"], true, "{pre_stop}");
    assert_eq!(pre_stop["handler"], "sleep");
    let ms = pre_stop["durationMs"].as_f64().unwrap();
    assert!((2900.0..6000.0).contains(&ms), "preStop took {ms} ms");

    let cs = r.container_status("grace-ignores-term", "stubborn");
    assert_eq!(cs["exitCode"], 137, "{cs}");
    assert_eq!(cs["state"], "terminated", "{cs}");
    let st = r.pod_status("grace-ignores-term");
    assert_eq!(st["stopRequested"], true);

    let total = r
        .ended
        .duration_since(timestamp(&killing))
        .expect("end after Killing");
    assert!(
        total >= Duration::from_millis(4500) && total < Duration::from_secs(12),
        "Killing to end: {total:?}\n{}",
        r.dump()
    );
    assert!(sandboxes(tmp.path()).is_empty(), "sandbox left behind");
}

// 3b. The same with a container that exits on SIGTERM: the stop ends right after preStop.
#[test]
fn container_honouring_sigterm_exits_right_after_pre_stop() {
    let tmp = TempDir::new("grace-term");
    let r = run(
        tmp.path(),
        &[
            path_str(&fixture("grace-honours-term.yaml")),
            "--stop-after",
            "1s",
        ],
    );
    assert_eq!(r.code(), Some(0), "{}", r.dump());
    assert_eq!(
        r.sequence(),
        pairs(&[
            ("Created", "polite"),
            ("Started", "polite"),
            ("Killing", "polite"),
        ]),
        "{}",
        r.dump()
    );
    let killing = r.events()[2].clone();
    let pre_stop = r.hook("polite", "preStop");
    assert_eq!(pre_stop["success"], true, "{pre_stop}");
    let cs = r.container_status("grace-honours-term", "polite");
    let code = cs["exitCode"].as_i64().unwrap();
    assert!(code == 0 || code == 143, "exit code {code}: {cs}");
    assert_eq!(r.pod_status("grace-honours-term")["phase"], "Succeeded");
    let total = r
        .ended
        .duration_since(timestamp(&killing))
        .expect("end after Killing");
    assert!(
        total >= Duration::from_millis(2500) && total < Duration::from_secs(5),
        "Killing to end: {total:?}\n{}",
        r.dump()
    );
}

// 4. Stop order: the app first, then sidecars in reverse order (s2, then s1).
#[test]
fn sidecars_stop_after_the_app_in_reverse_order() {
    let tmp = TempDir::new("order");
    let data = tmp.sub("data");
    let sandbox_tmp = tmp.sub("tmp");
    let container = |name: &str, init: bool| {
        format!(
            r#"  - name: {name}
    image: busybox
{policy}    command: ["sh", "-c", "trap 'echo {name} >> data/order; exit 0' TERM; while true; do sleep 0.1; done"]
    volumeMounts:
    - name: data
      mountPath: /data
"#,
            policy = if init {
                "    restartPolicy: Always\n"
            } else {
                ""
            }
        )
    };
    let manifest = format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: stop-order
spec:
  terminationGracePeriodSeconds: 10
  volumes:
  - name: data
    hostPath:
      path: {data}
  initContainers:
{s1}{s2}  containers:
{app}"#,
        data = data.display(),
        s1 = container("s1", true),
        s2 = container("s2", true),
        app = container("app", false),
    );
    let file = tmp.path().join("stop-order.yaml");
    std::fs::write(&file, manifest).unwrap();
    let r = run(&sandbox_tmp, &[path_str(&file), "--stop-after", "3s"]);
    assert_eq!(r.code(), Some(0), "{}", r.dump());
    let seq = r.sequence();
    assert_eq!(
        seq[..6],
        pairs(&[
            ("Created", "s1"),
            ("Started", "s1"),
            ("Created", "s2"),
            ("Started", "s2"),
            ("Created", "app"),
            ("Started", "app"),
        ])[..],
        "{}",
        r.dump()
    );
    // Killing is recorded for every container (concurrently: any order).
    let mut killed: Vec<String> = seq[6..]
        .iter()
        .map(|(reason, c)| {
            assert_eq!(reason, "Killing", "{}", r.dump());
            c.clone()
        })
        .collect();
    killed.sort();
    assert_eq!(killed, ["app", "s1", "s2"], "{}", r.dump());

    let order = std::fs::read_to_string(data.join("order")).unwrap_or_default();
    let order: Vec<&str> = order.lines().collect();
    assert_eq!(order, ["app", "s2", "s1"], "exit order\n{}", r.dump());
    for c in ["s1", "s2", "app"] {
        assert_eq!(r.container_status("stop-order", c)["exitCode"], 0);
    }
    assert!(sandboxes(&sandbox_tmp).is_empty(), "sandbox left behind");
}

// 5a. restartPolicy Never, the app exits 1: Failed, exit code 1, no restart.
#[test]
fn never_policy_with_failing_app_fails_the_pod() {
    let tmp = TempDir::new("never");
    let r = run(tmp.path(), &[path_str(&fixture("never-exit-1.yaml"))]);
    assert_eq!(r.code(), Some(1), "{}", r.dump());
    assert_eq!(
        r.sequence(),
        pairs(&[("Created", "app"), ("Started", "app")]),
        "{}",
        r.dump()
    );
    let st = r.pod_status("never-fails");
    assert_eq!(st["phase"], "Failed");
    assert_eq!(st["stopRequested"], false);
    let cs = r.container_status("never-fails", "app");
    assert_eq!(cs["exitCode"], 1, "{cs}");
    assert_eq!(cs["restartCount"], 0, "{cs}");
    assert_eq!(cs["reason"], "Error", "{cs}");
}

// 5b. restartPolicy OnFailure, the app exits 0: Succeeded, no restart.
#[test]
fn on_failure_policy_with_successful_app_succeeds() {
    let tmp = TempDir::new("onfailure");
    let r = run(tmp.path(), &[path_str(&fixture("onfailure-exit-0.yaml"))]);
    assert_eq!(r.code(), Some(0), "{}", r.dump());
    assert_eq!(
        r.sequence(),
        pairs(&[("Created", "app"), ("Started", "app")]),
        "{}",
        r.dump()
    );
    let st = r.pod_status("onfailure-succeeds");
    assert_eq!(st["phase"], "Succeeded");
    let cs = r.container_status("onfailure-succeeds", "app");
    assert_eq!(cs["exitCode"], 0, "{cs}");
    assert_eq!(cs["restartCount"], 0, "{cs}");
    assert_eq!(cs["reason"], "Completed", "{cs}");
}

// 6. An invalid manifest: exit 2, nothing started, the errors name the file and field path.
#[test]
fn invalid_manifest_exits_2_and_starts_nothing() {
    let tmp = TempDir::new("invalid");
    let file = fixture("invalid.yaml");
    let r = run(tmp.path(), &[path_str(&file), "--stop-after", "1s"]);
    assert_eq!(r.code(), Some(2), "{}", r.dump());
    assert!(r.stdout.trim().is_empty(), "something ran:\n{}", r.dump());
    let file = file.display().to_string();
    assert!(
        r.stderr.lines().any(|l| l.contains(&file)
            && l.contains("spec.restartPolicy: Unsupported value: \"Sometimes\"")),
        "{}",
        r.dump()
    );
    assert!(
        r.stderr
            .lines()
            .any(|l| l.contains(&file) && l.contains("spec.containers[0].name: Required value")),
        "{}",
        r.dump()
    );
    assert!(sandboxes(tmp.path()).is_empty(), "a sandbox was created");
}

/// A pod whose container writes its pid to `<data>/pid` and then becomes `sleep 1000`.
/// (`$$$$` because Kubernetes' command expansion turns `$$` into `$`.)
fn sleeper_manifest(tmp: &TempDir, pod: &str) -> (PathBuf, PathBuf) {
    let data = tmp.sub("data");
    let manifest = format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {pod}
spec:
  terminationGracePeriodSeconds: 5
  volumes:
  - name: data
    hostPath:
      path: {data}
  containers:
  - name: sleeper
    image: busybox
    command: ["sh", "-c", "echo $$$$ > $WASMHOOK_ROOT/data/pid; exec sleep 1000"]
    volumeMounts:
    - name: data
      mountPath: /data
"#,
        data = data.display()
    );
    let file = tmp.path().join(format!("{pod}.yaml"));
    std::fs::write(&file, manifest).unwrap();
    (file, data.join("pid"))
}

// 7a. SIGINT stops the pod gracefully: exit 0, the container process is gone, the sandbox
// directory removed.
#[test]
fn sigint_stops_gracefully_and_leaves_no_process() {
    let tmp = TempDir::new("sigint");
    let (file, pid_file) = sleeper_manifest(&tmp, "sigint-pod");
    let sandbox_tmp = tmp.sub("tmp");
    let mut running = spawn(&sandbox_tmp, &[path_str(&file)]);
    let pid = read_pid(&pid_file, &mut running);
    assert!(!process_gone(pid), "the container is not running");
    // Let the CLI's signal handlers settle (they are installed as the pods start).
    std::thread::sleep(Duration::from_millis(300));
    signal(running.pid(), "INT");
    let r = running.wait();
    assert_eq!(r.code(), Some(0), "{}", r.dump());
    assert_eq!(
        r.sequence(),
        pairs(&[
            ("Created", "sleeper"),
            ("Started", "sleeper"),
            ("Killing", "sleeper"),
        ]),
        "{}",
        r.dump()
    );
    let st = r.pod_status("sigint-pod");
    assert_eq!(st["stopRequested"], true);
    assert_eq!(r.container_status("sigint-pod", "sleeper")["exitCode"], 143);
    assert!(
        poll(Duration::from_secs(5), || process_gone(pid)),
        "container process {pid} outlived wasmhook"
    );
    assert!(sandboxes(&sandbox_tmp).is_empty(), "sandbox left behind");
    assert!(r.elapsed < Duration::from_secs(30));
}

// 7b. SIGKILL of wasmhook itself: the container dies too (PR_SET_PDEATHSIG). The sandbox
// directory cannot be cleaned up after a SIGKILL; it is left in the test's TMPDIR, which
// the test removes.
#[test]
fn sigkill_of_wasmhook_takes_the_container_down() {
    let tmp = TempDir::new("sigkill");
    let (file, pid_file) = sleeper_manifest(&tmp, "sigkill-pod");
    let sandbox_tmp = tmp.sub("tmp");
    let mut running = spawn(&sandbox_tmp, &[path_str(&file)]);
    let pid = read_pid(&pid_file, &mut running);
    assert!(!process_gone(pid), "the container is not running");
    signal(running.pid(), "KILL");
    let r = running.wait();
    assert_eq!(r.code(), None, "wasmhook survived SIGKILL?\n{}", r.dump());
    assert!(
        poll(Duration::from_secs(10), || process_gone(pid)),
        "container process {pid} outlived a SIGKILLed wasmhook"
    );
    // A SIGKILLed wasmhook cannot remove its sandbox directory...
    let left = sandboxes(&sandbox_tmp);
    assert_eq!(
        left.len(),
        1,
        "sandbox dirs left by the SIGKILLed run: {left:?}"
    );
    // ...so the next run on the same TMPDIR sweeps it (its owner is gone).
    let r = run(&sandbox_tmp, &[path_str(&file), "--stop-after", "1s"]);
    assert_eq!(r.code(), Some(0), "{}", r.dump());
    assert_eq!(
        sandboxes(&sandbox_tmp),
        Vec::<String>::new(),
        "the next run did not sweep the SIGKILLed run's sandbox\n{}",
        r.dump()
    );
}

// 8. The seeds' sidecar example: the httpGet postStart reaches the Python server, the wasm
// preStop writes goodbye.txt.
#[test]
fn sidecar_example_http_post_start_and_wasm_pre_stop() {
    if !have_python3() {
        eprintln!("skipping sidecar_example_http_post_start_and_wasm_pre_stop: no python3 on PATH");
        return;
    }
    let tmp = TempDir::new("sidecar");
    let r = run(
        tmp.path(),
        &[path_str(&example("sidecar.yaml")), "--stop-after", "4s"],
    );
    assert_eq!(r.code(), Some(0), "{}", r.dump());
    let seq = r.sequence();
    assert_eq!(
        seq[..4],
        pairs(&[
            ("Created", "main-container"),
            ("Started", "main-container"),
            ("Created", "sidecar-container"),
            ("Started", "sidecar-container"),
        ])[..],
        "{}",
        r.dump()
    );
    assert!(
        !seq.iter()
            .any(|(r, _)| r == "FailedPostStartHook" || r == "FailedPreStopHook"),
        "{}",
        r.dump()
    );
    let sleep = r.hook("main-container", "postStart");
    assert_eq!(sleep["handler"], "sleep");
    assert_eq!(sleep["success"], true, "{sleep}");
    let http = r.hook("sidecar-container", "postStart");
    assert_eq!(http["handler"], "httpGet");
    assert_eq!(http["success"], true, "{http}");
    let pre_stop = r.hook("main-container", "preStop");
    assert_eq!(pre_stop["handler"], "exec");
    assert_eq!(pre_stop["success"], true, "{pre_stop}");
    // The emptyDir is gone after the run; the hook's own report names the file it wrote.
    assert!(
        s(&pre_stop["output"]).contains("/usr/share/nginx/html/goodbye.txt"),
        "{pre_stop}"
    );
    let st = r.pod_status("sidecar-demo");
    assert_eq!(st["stopRequested"], true);
    for c in ["main-container", "sidecar-container"] {
        assert_eq!(r.container_status("sidecar-demo", c)["restartCount"], 0);
    }
}
