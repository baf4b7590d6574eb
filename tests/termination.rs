//! Termination as the kubelet does it (`killContainer`, `waitForTurn`, `executePreStopHook`,
//! the pod worker's handling of an in-flight postStart), end to end through `wasmhook run`.
//!
//! Timing assertions are bounds with slack (a shared, loaded 2-core machine): they tell the
//! kubelet's behaviour from the one it replaced by seconds, not milliseconds.

mod common;

use std::path::Path;
use std::time::Duration;

use common::run::*;
use common::{repo, TempDir};

fn wat(name: &str) -> String {
    repo()
        .join("tests/fixtures/wat")
        .join(name)
        .display()
        .to_string()
}

/// Seconds since the epoch that a container wrote into `file` (`date +%s.%N`).
fn stamp(file: &Path) -> f64 {
    std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .trim()
        .parse()
        .unwrap()
}

fn epoch(t: std::time::SystemTime) -> f64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

// `waitForTurn` is bounded by the grace left: three sidecars whose preStop hooks never
// finish all get their stop signal when the grace is spent, at once, not one after another.
#[test]
fn sidecars_wait_for_their_turn_only_within_the_grace() {
    let tmp = TempDir::new("turn");
    let data = tmp.sub("data");
    let sidecar = |name: &str| {
        format!(
            r#"  - name: {name}
    image: busybox
    restartPolicy: Always
    command: ["sh", "-c", "trap 'date +%s.%N > data/{name}; exit 0' TERM; while true; do sleep 0.1; done"]
    volumeMounts: [{{name: data, mountPath: /data}}]
    lifecycle: {{preStop: {{exec: {{command: ["{block}"]}}}}}}
"#,
            block = wat("block.wat")
        )
    };
    let manifest = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: turn}}
spec:
  terminationGracePeriodSeconds: 4
  volumes: [{{name: data, hostPath: {{path: {data}}}}}]
  initContainers:
{s1}{s2}{s3}  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"]
"#,
        data = data.display(),
        s1 = sidecar("s1"),
        s2 = sidecar("s2"),
        s3 = sidecar("s3"),
    );
    let file = write(tmp.path(), "turn.yaml", &manifest);
    let r = run(&tmp.sub("tmp"), &[&file, "--stop-after", "1s"]);
    assert_eq!(r.code(), Some(0), "{}", r.dump());
    let killing = r
        .events()
        .into_iter()
        .find(|e| e["reason"] == "Killing")
        .expect("a Killing event");
    let t0 = epoch(timestamp(&killing));
    let terms: Vec<f64> = ["s1", "s2", "s3"]
        .iter()
        .map(|s| stamp(&data.join(s)) - t0)
        .collect();
    // The kubelet: preStop for at most the grace (4 s), no grace left to wait for a turn,
    // so all three at about +4 s. (Waiting for every turn, they came at +4, +6, +8 s.)
    for t in &terms {
        assert!(
            (3.0..6.5).contains(t),
            "stop signals at {terms:?}\n{}",
            r.dump()
        );
    }
    let spread = terms.iter().cloned().fold(f64::MIN, f64::max)
        - terms.iter().cloned().fold(f64::MAX, f64::min);
    assert!(spread < 1.5, "stop signals at {terms:?}\n{}", r.dump());
    // A stop never outlasts the grace plus the stop signal's 2 s (with slack).
    let total = epoch(r.ended) - t0;
    assert!(total < 9.0, "the stop took {total:.1} s\n{}", r.dump());
    // Overrunning the grace is no hook failure: no event; the hooks died with their
    // containers, and their reports say so.
    let reasons: Vec<String> = r.sequence().into_iter().map(|(reason, _)| reason).collect();
    assert!(
        !reasons.iter().any(|x| x == "FailedPreStopHook"),
        "{reasons:?}"
    );
    assert!(
        !reasons.iter().any(|x| x == "ExceededGracePeriod"),
        "{reasons:?}"
    );
    for s in ["s1", "s2", "s3"] {
        let h = r.hook(s, "preStop");
        assert_eq!(h["success"], false, "{h}");
        assert!(s_of(&h["error"]).contains("cancelled"), "{h}");
    }
}

fn s_of(v: &serde_json::Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

// preStop's deadline is the grace: the engine-wide `--timeout` bounds postStart only. A
// sleep of 3 s and a wasm hook needing about 2 s run to their end under `--timeout 1s`.
#[test]
fn pre_stop_runs_to_its_end_within_the_grace_whatever_the_engine_timeout() {
    let tmp = TempDir::new("prestop-deadline");
    let data = tmp.sub("data");
    let drain = repo().join("examples/hooks/bin/drain.wasm");
    let manifest = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: deadline}}
spec:
  terminationGracePeriodSeconds: 30
  volumes: [{{name: data, hostPath: {{path: {data}}}}}]
  containers:
  - name: sleeper
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"]
    lifecycle: {{preStop: {{sleep: {{seconds: 3}}}}}}
  - name: drainer
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; while [ ! -f data/draining ]; do sleep 0.1; done; sleep 2; touch data/drained; while true; do sleep 0.1; done"]
    volumeMounts: [{{name: data, mountPath: /data}}]
    lifecycle: {{preStop: {{exec: {{command: ["{drain}", "/data", "20s"]}}}}}}
"#,
        data = data.display(),
        drain = drain.display(),
    );
    let file = write(tmp.path(), "deadline.yaml", &manifest);
    let r = run(
        &tmp.sub("tmp"),
        &[&file, "--timeout", "1s", "--stop-after", "1s"],
    );
    assert_eq!(r.code(), Some(0), "{}", r.dump());
    let sleep = r.hook("sleeper", "preStop");
    assert_eq!(sleep["success"], true, "{sleep}");
    assert!(sleep["durationMs"].as_f64().unwrap() >= 2900.0, "{sleep}");
    let drain = r.hook("drainer", "preStop");
    assert_eq!(drain["success"], true, "{drain}");
    assert!(drain["durationMs"].as_f64().unwrap() >= 1900.0, "{drain}");
}

// A preStop cut off by its container's end reports the kubelet's sleep text; the stop goes
// on at the grace (here `--grace-period 1`), with no FailedPreStopHook.
#[test]
fn a_sleep_cut_off_by_its_container_reports_the_kubelet_text() {
    let tmp = TempDir::new("sleep-cut");
    let manifest = r#"apiVersion: v1
kind: Pod
metadata: {name: sleep-cut, uid: sleep-cut-uid}
spec:
  terminationGracePeriodSeconds: 20
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"]
    lifecycle: {preStop: {sleep: {seconds: 20}}}
"#;
    let file = write(tmp.path(), "sleep-cut.yaml", manifest);
    let r = run(
        &tmp.sub("tmp"),
        &[&file, "--stop-after", "1s", "--grace-period", "1"],
    );
    assert_eq!(r.code(), Some(0), "{}", r.dump());
    let h = r.hook("app", "preStop");
    assert_eq!(
        s_of(&h["error"]),
        format!(
            "Sleep lifecycle hook (20) for Container \"app\" in Pod \"sleep-cut_default({})\" \
             failed - error: container terminated before sleep hook finished",
            "sleep-cut-uid"
        ),
        "{h}"
    );
    assert!(
        !r.sequence().iter().any(|(x, _)| x == "FailedPreStopHook"),
        "{}",
        r.dump()
    );
    assert!(r.elapsed < Duration::from_secs(12), "{}", r.dump());
}

// A stop request during a postStart: the other containers are stopped at once; the hook runs
// to its end (the kubelet does not cancel it), records no FailedPostStartHook, and its
// container is stopped after it.
#[test]
fn a_post_start_in_flight_is_not_cancelled_and_holds_up_only_its_container() {
    let tmp = TempDir::new("poststart-inflight");
    let manifest = r#"apiVersion: v1
kind: Pod
metadata: {name: inflight}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: first
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"]
  - name: slow
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"]
    lifecycle: {postStart: {sleep: {seconds: 4}}}
"#;
    let file = write(tmp.path(), "inflight.yaml", manifest);
    let r = run(&tmp.sub("tmp"), &[&file, "--stop-after", "1s"]);
    assert_eq!(r.code(), Some(0), "{}", r.dump());
    let post_start = r.hook("slow", "postStart");
    assert_eq!(post_start["success"], true, "{post_start}");
    let events = r.events();
    let at = |reason: &str, c: &str| {
        events
            .iter()
            .find(|e| e["reason"] == reason && e["container"] == c)
            .map(|e| epoch(timestamp(e)))
            .unwrap_or_else(|| panic!("no {reason} for {c}\n{}", r.dump()))
    };
    let hook_end = epoch(timestamp(&post_start));
    assert!(
        at("Killing", "first") < hook_end - 1.0,
        "first was held up by slow's postStart\n{}",
        r.dump()
    );
    assert!(at("Killing", "slow") >= hook_end - 0.1, "{}", r.dump());
    assert!(
        !events.iter().any(|e| e["reason"] == "FailedPostStartHook"),
        "{}",
        r.dump()
    );
}

// `lifecycle.stopSignal` as the API server takes it: it needs `spec.os.name` (else the
// manifest is refused, exit 2, nothing started), and then it is the signal the stop sends.
#[test]
fn stop_signal_is_validated_and_sent() {
    let tmp = TempDir::new("stop-signal");
    let data = tmp.sub("data");
    let manifest = |os: &str| {
        format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: quit}}
spec:
  terminationGracePeriodSeconds: 10
{os}  volumes: [{{name: data, hostPath: {{path: {data}}}}}]
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "trap 'echo QUIT > data/signal; exit 0' QUIT; trap 'echo TERM > data/signal; exit 0' TERM; while true; do sleep 0.1; done"]
    volumeMounts: [{{name: data, mountPath: /data}}]
    lifecycle: {{stopSignal: SIGQUIT}}
"#,
            data = data.display()
        )
    };
    let bad = write(tmp.path(), "no-os.yaml", &manifest(""));
    let r = run(&tmp.sub("tmp"), &[&bad, "--stop-after", "1s"]);
    assert_eq!(r.code(), Some(2), "{}", r.dump());
    assert!(
        r.stderr.contains(
            "spec.containers[0].lifecycle.stopSignal: Forbidden: may not be set for containers with empty `spec.os.name`"
        ),
        "{}",
        r.dump()
    );
    assert!(!data.join("signal").exists());

    // Started as a shell's background job, with SIGQUIT ignored: the container still
    // starts with every signal at its default, as a runtime starts it, and its trap runs.
    let good = write(tmp.path(), "linux.yaml", &manifest("  os: {name: linux}\n"));
    let cmd = command(&tmp.sub("tmp"), &[&good, "--stop-after", "1s"]);
    let r = start(as_background_job(cmd)).wait();
    assert_eq!(r.code(), Some(0), "{}", r.dump());
    assert_eq!(
        std::fs::read_to_string(data.join("signal")).unwrap().trim(),
        "QUIT"
    );
    assert!(r.elapsed < Duration::from_secs(8), "{}", r.dump());
}
