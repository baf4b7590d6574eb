//! Probes end to end through `wasmhook run` (the kubelet's prober: `worker.go`,
//! `prober.go`, `computePodActions`): the startup gate of a sidecar, liveness kills with the
//! kubelet's messages and grace, readiness in the status, and the example pod.
//!
//! The exec probes are `healthy.wat` (passes while the first volume holds `healthy`), run as
//! wasm like every exec handler. Timing assertions are bounds with slack.

mod common;

use std::process::Command;

use serde_json::Value;

use common::run::*;
use common::{repo, TempDir};

fn healthy_wat() -> String {
    repo()
        .join("examples/hooks/bin/healthy.wat")
        .display()
        .to_string()
}

fn messages(r: &Run, reason: &str, container: &str) -> Vec<String> {
    r.events()
        .iter()
        .filter(|e| e["reason"] == reason && e["container"] == container)
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn readiness(r: &Run) -> Vec<Value> {
    r.lines()
        .into_iter()
        .filter(|v| v["kind"] == "Readiness")
        .collect()
}

/// Index of the first event with this reason and container.
fn index(r: &Run, reason: &str, container: &str) -> usize {
    r.sequence()
        .iter()
        .position(|(x, c)| x == reason && c == container)
        .unwrap_or_else(|| panic!("no {reason} for {container}\n{}", r.dump()))
}

// A sidecar with a startup probe holds back the next container until the probe passes: the
// probe fails (Unhealthy, the module's output in the message) until the sidecar has written
// `healthy`, then the app is created.
#[test]
fn a_sidecar_startup_probe_gates_the_app() {
    let tmp = TempDir::new("startup-gate");
    let manifest = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: gate}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 2
  volumes: [{{name: data, emptyDir: {{}}}}]
  initContainers:
  - name: side
    image: busybox
    restartPolicy: Always
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 2; touch data/healthy; while true; do sleep 0.1; done"]
    volumeMounts: [{{name: data, mountPath: /data}}]
    startupProbe:
      exec: {{command: ["{wat}"]}}
      periodSeconds: 1
      failureThreshold: 30
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "exit 0"]
"#,
        wat = healthy_wat()
    );
    let file = write(tmp.path(), "gate.yaml", &manifest);
    let r = run(&tmp.sub("tmp"), &[&file]);
    assert_eq!(r.code(), Some(0), "{}", r.dump());
    let unhealthy = messages(&r, "Unhealthy", "side");
    assert!(
        !unhealthy.is_empty(),
        "no failed startup probe\n{}",
        r.dump()
    );
    assert_eq!(
        unhealthy[0],
        "Startup probe failed: unhealthy: no file named healthy in the first volume\n"
    );
    assert!(
        index(&r, "Unhealthy", "side") < index(&r, "Created", "app"),
        "the app started before the sidecar's startup probe passed\n{}",
        r.dump()
    );
    // The sidecar was ready (no readiness probe: started means ready) before the app ran.
    let side_ready = readiness(&r)
        .into_iter()
        .find(|v| v["container"] == "side" && v["ready"] == true)
        .unwrap_or_else(|| panic!("side never ready\n{}", r.dump()));
    assert_eq!(side_ready["readyContainers"], 1, "{side_ready}");
    assert_eq!(side_ready["containers"], 2, "{side_ready}");
}

// A failed liveness probe kills the container with the kubelet's message; under
// `restartPolicy: Never` there is no ", will be restarted" and no restart. The probe's own
// `terminationGracePeriodSeconds` (1 s) is the kill's grace, not the pod's 30 s: a
// container ignoring SIGTERM is SIGKILLed after the 2 s minimum.
#[test]
fn liveness_failure_kills_with_the_probe_grace_and_the_restart_policy() {
    let tmp = TempDir::new("liveness-never");
    let manifest = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: live}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 30
  volumes: [{{name: data, emptyDir: {{}}}}]
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"]
    volumeMounts: [{{name: data, mountPath: /data}}]
    livenessProbe:
      exec: {{command: ["{wat}"]}}
      periodSeconds: 1
      failureThreshold: 2
      terminationGracePeriodSeconds: 1
"#,
        wat = healthy_wat()
    );
    let file = write(tmp.path(), "live.yaml", &manifest);
    let r = run(&tmp.sub("tmp"), &[&file]);
    assert_eq!(r.code(), Some(1), "{}", r.dump());
    assert_eq!(
        r.sequence(),
        [
            ("Created", "app"),
            ("Started", "app"),
            ("Unhealthy", "app"),
            ("Unhealthy", "app"),
            ("Killing", "app"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string())),
        "{}",
        r.dump()
    );
    assert_eq!(
        messages(&r, "Unhealthy", "app")[0],
        "Liveness probe failed: unhealthy: no file named healthy in the first volume\n"
    );
    assert_eq!(
        messages(&r, "Killing", "app"),
        ["Container app failed liveness probe"]
    );
    let cs = r.container_status("live", "app");
    assert_eq!(cs["exitCode"], 137, "{cs}");
    assert_eq!(cs["restartCount"], 0, "{cs}");
    assert_eq!(r.pod_status("live")["phase"], "Failed");
    assert!(
        r.elapsed < std::time::Duration::from_secs(15),
        "the kill took the pod's grace, not the probe's\n{}",
        r.dump()
    );
}

// Readiness: not ready until the readiness probe passes, then ready; the live `Readiness`
// records, the JSON `PodStatus` (`ready`, `started`, the `Ready` condition) and the text
// summary show it.
#[test]
fn readiness_shows_in_records_and_in_the_status() {
    let tmp = TempDir::new("readiness");
    let manifest = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: ready}}
spec:
  terminationGracePeriodSeconds: 2
  volumes: [{{name: data, emptyDir: {{}}}}]
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 1; touch data/healthy; while true; do sleep 0.1; done"]
    volumeMounts: [{{name: data, mountPath: /data}}]
    readinessProbe:
      exec: {{command: ["{wat}"]}}
      periodSeconds: 1
"#,
        wat = healthy_wat()
    );
    let file = write(tmp.path(), "ready.yaml", &manifest);
    let r = run(&tmp.sub("tmp"), &[&file, "--stop-after", "4s"]);
    assert_eq!(r.code(), Some(0), "{}", r.dump());
    let changes: Vec<(bool, bool)> = readiness(&r)
        .iter()
        .map(|v| (v["ready"] == true, v["podReady"] == true))
        .collect();
    // Ready once the probe passed; not ready again when the container stopped.
    assert_eq!(changes, [(true, true), (false, false)], "{}", r.dump());
    assert!(
        messages(&r, "Unhealthy", "app")
            .iter()
            .all(|m| m.starts_with("Readiness probe failed: unhealthy")),
        "{}",
        r.dump()
    );
    let st = r.pod_status("ready");
    assert_eq!(st["conditions"][0]["type"], "Ready", "{st}");
    assert_eq!(st["conditions"][0]["status"], "False", "{st}");
    let cs = r.container_status("ready", "app");
    assert_eq!(
        (cs["ready"].clone(), cs["started"].clone()),
        (false.into(), false.into())
    );

    // The text form: the change as it happens and READY in the summary.
    let out = Command::new(BIN)
        .args(["run", "--no-cache", &file, "--stop-after", "4s"])
        .env("TMPDIR", tmp.sub("tmp-text"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("pod/ready/app ready (pod READY 1/1, Ready=True)"),
        "{text}"
    );
    assert!(
        text.contains("pod/ready: Succeeded  READY 0/1  Ready=False"),
        "{text}"
    );
}

// The pod's READY tally over a whole life: an init container never counts; a sidecar and an
// app without a readiness probe are ready once started; the probed app joins when its probe
// passes; every container leaves the tally as it stops. Each `Readiness` record's counts
// must equal the running tally of the records before it.
#[test]
fn readiness_tally_counts_sidecars_and_apps_not_init_containers() {
    let tmp = TempDir::new("tally");
    let manifest = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: tally}}
spec:
  terminationGracePeriodSeconds: 2
  volumes: [{{name: data, emptyDir: {{}}}}]
  initContainers:
  - name: init
    image: busybox
    command: ["true"]
  - name: side
    image: busybox
    restartPolicy: Always
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"]
  containers:
  - name: plain
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"]
  - name: probed
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 1; touch data/healthy; while true; do sleep 0.1; done"]
    volumeMounts: [{{name: data, mountPath: /data}}]
    readinessProbe:
      exec: {{command: ["{wat}"]}}
      periodSeconds: 1
"#,
        wat = healthy_wat()
    );
    let file = write(tmp.path(), "tally.yaml", &manifest);
    let r = run(&tmp.sub("tmp"), &[&file, "--stop-after", "5s"]);
    assert_eq!(r.code(), Some(0), "{}", r.dump());
    let records = readiness(&r);
    let mut tally = 0i64;
    let mut became_ready = Vec::new();
    for v in &records {
        assert_ne!(v["container"], "init", "{v}");
        assert_eq!(v["containers"], 3, "{v}");
        tally += if v["ready"] == true { 1 } else { -1 };
        assert_eq!(v["readyContainers"], tally, "{}", r.dump());
        assert_eq!(v["podReady"], tally == 3, "{v}");
        if v["ready"] == true {
            became_ready.push(v["container"].as_str().unwrap_or_default().to_owned());
        }
    }
    assert_eq!(became_ready.len(), 3, "{}", r.dump());
    assert_eq!(became_ready[0], "side", "{}", r.dump());
    assert_eq!(became_ready[2], "probed", "{}", r.dump());
    assert_eq!(tally, 0, "every container left the tally\n{}", r.dump());
}

// The example pod: a sidecar gated by its startup probe, readiness over HTTP, and a wasm
// liveness probe that finds the app wedged and has it killed (preStop included) and
// restarted.
#[test]
fn the_probes_example_pod() {
    if !have_python3() {
        eprintln!("skipped: python3 is not installed");
        return;
    }
    let tmp = TempDir::new("probes-example");
    let file = repo().join("examples/pods/probes.yaml");
    let r = run(tmp.path(), &[file.to_str().unwrap(), "--stop-after", "14s"]);
    assert_eq!(r.code(), Some(0), "{}", r.dump());
    assert!(index(&r, "Started", "web") < index(&r, "Created", "app"));
    assert!(
        readiness(&r).iter().any(|v| v["podReady"] == true),
        "never READY 2/2\n{}",
        r.dump()
    );
    let liveness = messages(&r, "Unhealthy", "app");
    assert!(
        liveness
            .iter()
            .any(|m| m.starts_with("Liveness probe failed: unhealthy")),
        "{}",
        r.dump()
    );
    assert!(
        messages(&r, "Killing", "app")
            .iter()
            .any(|m| m == "Container app failed liveness probe, will be restarted"),
        "{}",
        r.dump()
    );
    let killed = index(&r, "Killing", "app");
    assert!(
        r.sequence()[killed..]
            .iter()
            .any(|(x, c)| x == "Created" && c == "app"),
        "no restart after the liveness kill\n{}",
        r.dump()
    );
    assert_eq!(r.hook("app", "preStop")["success"], true);
    assert!(r.container_status("probes", "app")["restartCount"].as_u64() >= Some(1));
}
