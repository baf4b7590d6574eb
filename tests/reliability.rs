//! Reliability and security (issue 8): hostile hooks run *inside pods* on one engine next to a
//! well-behaved pod, bad input (fuzzed modules, broken manifests), faults through the binary,
//! and a bounded soak (`#[ignore]`d: `scripts/soak.sh`).
//!
//! The runtime-level hostile-hook tests live in `tests/wasm_runtime.rs`; these check what the
//! *engine* makes of the same hooks: the event, the `HookResult` error naming the cause, how
//! long the hook took to stop, and that a neighbour pod on the same engine is unaffected.
//!
//! Every catalogue case prints one machine-readable line (run with `--nocapture`):
//! `RELIABILITY|case|expected|observed|ms`; fuzz tests print `FUZZ|name|inputs|outcomes`;
//! the soak prints `SOAK|metric|before|after`. `scripts/reliability-report.sh` collects them.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::Value;
use wasmhook::backend::process::ProcessBackendConfig;
use wasmhook::backend::ProcessBackend;
use wasmhook::engine::{Engine, EngineConfig, PodStatus};
use wasmhook::events::{reason, EventType, HookReport, Record, Recorder};
use wasmhook::handlers::Handlers;
use wasmhook::manifest::{check_files, LoadOptions, ManifestPod};
use wasmhook::wasm::{Allocator, HookRuntime, Invocation, Limits, RuntimeConfig};

use common::{repo, TempDir};

const BIN: &str = env!("CARGO_BIN_EXE_wasmhook");

fn hostile(name: &str) -> PathBuf {
    repo().join("tests/fixtures/hostile").join(name)
}

fn wat(name: &str) -> PathBuf {
    repo().join("tests/fixtures/wat").join(name)
}

fn p(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// One machine-readable catalogue line. `|` and newlines in the fields are replaced so the
/// line stays one record.
fn emit(case: &str, expected: &str, observed: &str, ms: u128) {
    let clean = |s: &str| s.replace(['|', '\n', '\r'], " ");
    let mut obs = clean(observed);
    if obs.len() > 300 {
        let mut cut = 300;
        while !obs.is_char_boundary(cut) {
            cut -= 1;
        }
        obs.truncate(cut);
        obs.push('…');
    }
    println!(
        "RELIABILITY|{}|{}|{}|{ms}",
        clean(case),
        clean(expected),
        obs
    );
}

// ---------------------------------------------------------------------------------------------
// 1. The sandbox catalogue, through the engine.
// ---------------------------------------------------------------------------------------------

fn runtime(cache: Option<&Path>) -> HookRuntime {
    HookRuntime::new(RuntimeConfig {
        allocator: Allocator::Pooling { max_instances: 64 },
        cache_dir: cache.map(Path::to_owned),
        allow_precompiled: false,
        default_limits: Limits::default(),
    })
    .expect("runtime")
}

/// The engine as `wasmhook run` wires it: process backend, handlers over one wasm runtime.
fn engine(rt: HookRuntime) -> Engine {
    Engine::new(
        Arc::new(ProcessBackend::new(ProcessBackendConfig::default())),
        Handlers::new(rt),
        EngineConfig::default(),
    )
}

/// Validate a manifest with the runtime (modules compiled), as `wasmhook run` does.
fn load_pods(rt: &HookRuntime, manifest: &Path) -> Vec<ManifestPod> {
    let check = |m: &Path| wasmhook::handlers::exec::check_host_command(rt, m);
    let report = check_files(&[manifest.to_path_buf()], &LoadOptions::default(), &check);
    assert!(report.is_valid(), "invalid manifest: {:?}", report.errors);
    report.pods
}

/// Everything one pod recorded.
#[derive(Default, Debug)]
struct PodRecords {
    events: Vec<(EventType, String, String)>,
    hooks: Vec<HookReport>,
}

impl PodRecords {
    fn hook(&self, kind: &str) -> Option<&HookReport> {
        self.hooks.iter().find(|h| h.hook == kind)
    }

    fn reasons(&self) -> Vec<&str> {
        self.events.iter().map(|(_, r, _)| r.as_str()).collect()
    }
}

fn split_records(records: Vec<Record>) -> BTreeMap<String, PodRecords> {
    let mut by_pod: BTreeMap<String, PodRecords> = BTreeMap::new();
    for r in records {
        match r {
            Record::Event(e) => by_pod.entry(e.pod.clone()).or_default().events.push((
                e.kind,
                e.reason.to_string(),
                e.message,
            )),
            Record::Hook(h) => by_pod.entry(h.pod.clone()).or_default().hooks.push(h),
            Record::Readiness(_) => {}
        }
    }
    by_pod
}

/// The well-behaved neighbour: a `sleep` container with wasm postStart and preStop hooks.
fn good_pod(name: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 5
  restartPolicy: Never
  containers:
  - name: app
    image: busybox
    command: ["sleep", "3600"]
    lifecycle:
      postStart:
        exec:
          command: ["{hello}"]
      preStop:
        exec:
          command: ["{hello}"]
"#,
        hello = p(&wat("hello.wat"))
    )
}

/// What a hostile pod's hook is and where it sits.
struct Case<'a> {
    name: &'a str,
    /// `postStart` or `preStop`.
    hook: &'a str,
    /// The YAML `command` list of the exec hook.
    command: Vec<String>,
    annotations: Vec<(&'a str, &'a str)>,
    /// Extra YAML under the container (indented 4), e.g. env or volumeMounts.
    container_extra: String,
    /// Extra YAML under `spec` (indented 2), e.g. volumes.
    spec_extra: String,
}

impl<'a> Case<'a> {
    fn new(name: &'a str, hook: &'a str, module: &Path, args: &[&str]) -> Self {
        let mut command = vec![p(module).to_string()];
        command.extend(args.iter().map(|s| s.to_string()));
        Case {
            name,
            hook,
            command,
            annotations: vec![("wasmhook.dev/hook-timeout", "1s")],
            container_extra: String::new(),
            spec_extra: String::new(),
        }
    }

    fn annotate(mut self, k: &'a str, v: &'a str) -> Self {
        self.annotations.retain(|(key, _)| *key != k);
        self.annotations.push((k, v));
        self
    }

    fn yaml(&self, pod: &str) -> String {
        let ann: String = self
            .annotations
            .iter()
            .map(|(k, v)| format!("    {k}: {}\n", serde_json::to_string(v).unwrap()))
            .collect();
        let cmd = serde_json::to_string(&self.command).unwrap();
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {pod}\n  annotations:\n{ann}spec:\n  \
             terminationGracePeriodSeconds: 10\n  restartPolicy: Never\n{spec}  containers:\n  \
             - name: app\n    image: busybox\n    command: [\"sleep\", \"3600\"]\n{extra}    \
             lifecycle:\n      {hook}:\n        exec:\n          command: {cmd}\n",
            spec = self.spec_extra,
            extra = self.container_extra,
            hook = self.hook,
        )
    }
}

/// What the engine made of one hostile pod, with the neighbour checked.
struct CaseResult {
    hostile: PodRecords,
    status: PodStatus,
    /// The hostile hook's own duration (its time to stop).
    hook_ms: u128,
}

impl CaseResult {
    fn error(&self, hook: &str) -> String {
        self.hostile
            .hook(hook)
            .and_then(|h| h.error.clone())
            .unwrap_or_else(|| "(no error: hook succeeded)".into())
    }
}

/// Run the hostile pod and, 200 ms later (while its hook is running), a good pod on the same
/// engine. A preStop case is stopped as soon as it has started. Asserts the good pod saw
/// nothing unusual, and that the hostile hook reported a result.
async fn run_case(case: &Case<'_>) -> CaseResult {
    let tmp = TempDir::new(case.name);
    let manifest = tmp.path().join("pods.yaml");
    std::fs::write(
        &manifest,
        format!("{}---\n{}", case.yaml("hostile"), good_pod("good")),
    )
    .unwrap();
    let rt = runtime(None);
    let pods = load_pods(&rt, &manifest);
    let engine = engine(rt);
    let (recorder, mut rx) = Recorder::channel();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let collector = {
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Some(r) = rx.recv().await {
                seen.lock().unwrap().push(r);
            }
        })
    };
    let has_hook = |pod: &str, kind: &str| {
        seen.lock()
            .unwrap()
            .iter()
            .any(|r| matches!(r, Record::Hook(h) if h.pod == pod && h.hook == kind))
    };
    let started = Instant::now();
    let bad = engine.start_pod(&pods[0], recorder.clone());
    if case.hook == "preStop" {
        tokio::time::sleep(Duration::from_millis(300)).await;
        bad.stop(None);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let good = engine.start_pod(&pods[1], recorder.clone());
    drop(recorder);
    // A hook that succeeds leaves its pod running: stop it once the result is in.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !has_hook("hostile", case.hook) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bad.stop(None);
    let status = tokio::time::timeout(Duration::from_secs(60), bad.wait())
        .await
        .unwrap_or_else(|_| panic!("{}: the hostile pod did not end within 60 s", case.name));
    let bad_wall = started.elapsed();
    // Let the neighbour get through its postStart before stopping it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    good.stop(None);
    let good_status = tokio::time::timeout(Duration::from_secs(60), good.wait())
        .await
        .expect("the good pod stops");
    drop(engine);
    tokio::time::timeout(Duration::from_secs(10), collector)
        .await
        .expect("recorder closes")
        .unwrap();
    let records = std::mem::take(&mut *seen.lock().unwrap());
    let mut by_pod = split_records(records);
    let good_recs = by_pod.remove("good").unwrap_or_default();
    let hostile = by_pod.remove("hostile").unwrap_or_default();

    // The neighbour: both hooks succeeded, output intact, only normal events.
    for kind in ["postStart", "preStop"] {
        let h = good_recs
            .hook(kind)
            .unwrap_or_else(|| panic!("{}: good pod has no {kind} result", case.name));
        assert_eq!(h.error, None, "{}: good pod {kind} failed", case.name);
        assert_eq!(h.output, b"out 1\nerr\nout 2\n", "{}", case.name);
        assert!(
            h.duration < Duration::from_secs(5),
            "{}: good pod {kind} took {:?} next to the hostile hook",
            case.name,
            h.duration
        );
    }
    assert!(
        good_recs
            .events
            .iter()
            .all(|(t, _, _)| *t == EventType::Normal),
        "{}: good pod had warnings: {:?}",
        case.name,
        good_recs.events
    );
    assert_eq!(
        good_recs.reasons(),
        ["Created", "Started", "Killing"],
        "{}",
        case.name
    );
    assert!(
        good_status.stopped_cleanly(),
        "{}: {good_status:?}",
        case.name
    );

    let hook_ms = hostile
        .hook(case.hook)
        .unwrap_or_else(|| panic!("{}: no {} HookResult: {hostile:?}", case.name, case.hook))
        .duration
        .as_millis();
    assert!(
        bad_wall < Duration::from_secs(30),
        "{}: hostile pod took {bad_wall:?}",
        case.name
    );
    CaseResult {
        hostile,
        status,
        hook_ms,
    }
}

/// The case failed its hook the engine's way: the Warning event and the error naming `cause`.
fn assert_failed(case: &Case<'_>, r: &CaseResult, cause: &str) -> String {
    let want = match case.hook {
        "postStart" => reason::FAILED_POST_START_HOOK,
        _ => reason::FAILED_PRE_STOP_HOOK,
    };
    assert!(
        r.hostile
            .events
            .iter()
            .any(|(t, why, _)| *t == EventType::Warning && why == want),
        "{}: no {want} event: {:?}",
        case.name,
        r.hostile.events
    );
    let err = r.error(case.hook);
    assert!(
        err.contains(cause),
        "{}: error does not name {cause:?}: {err}",
        case.name
    );
    // The short cause: what follows `error: ` up to `, message:`.
    let short = err
        .split_once("error: ")
        .map(|(_, rest)| rest.split(", message:").next().unwrap_or(rest))
        .unwrap_or(&err);
    short.to_string()
}

/// Bound on the time to stop a 1 s-timeout hook, generous for a loaded 2-core machine.
const STOP_BOUND_MS: u128 = 5_000;

async fn limit_case(case: Case<'_>, expected: &str, cause: &str) {
    let r = run_case(&case).await;
    let observed = assert_failed(&case, &r, cause);
    assert!(
        r.hook_ms < STOP_BOUND_MS,
        "{}: took {} ms to stop",
        case.name,
        r.hook_ms
    );
    // With restartPolicy Never the failed postStart leaves the pod Failed, never hanging.
    let _ = &r.status;
    emit(case.name, expected, &observed, r.hook_ms);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_infinite_loop() {
    let c = Case::new("infinite loop", "postStart", &wat("loop.wat"), &[]);
    limit_case(c, "timeout 1s", "stopped: timed out after 1s").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_infinite_loop_fuel() {
    let c = Case::new(
        "infinite loop, fuel 10M",
        "postStart",
        &wat("loop.wat"),
        &[],
    )
    .annotate("wasmhook.dev/hook-fuel", "10000000")
    .annotate("wasmhook.dev/hook-timeout", "10s");
    limit_case(c, "fuel exhausted", "stopped: fuel exhausted").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_infinite_loop_pre_stop() {
    let c = Case::new("infinite loop in preStop", "preStop", &wat("loop.wat"), &[]);
    limit_case(c, "timeout 1s", "stopped: timed out after 1s").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_host_call_loops() {
    for (name, file) in [
        ("loop of fd_write(0 bytes)", "write0-loop.wat"),
        ("loop of sched_yield", "yield-loop.wat"),
        ("loop of clock_time_get", "clock-loop.wat"),
    ] {
        let c = Case::new(name, "postStart", &hostile(file), &[]);
        limit_case(c, "timeout 1s", "stopped: timed out after 1s").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_blocking_host_call_pre_stop() {
    let c = Case::new(
        "poll_oneoff 1 h in preStop",
        "preStop",
        &wat("block.wat"),
        &[],
    );
    limit_case(c, "timeout 1s", "stopped: timed out after 1s").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_memory_bomb() {
    let c = Case::new(
        "memory bomb, cap 16Mi",
        "postStart",
        &wat("membomb.wat"),
        &[],
    )
    .annotate("wasmhook.dev/hook-max-memory", "16Mi");
    limit_case(
        c,
        "memory limit 16 MiB",
        "stopped: memory limit of 16 MiB exceeded",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_table_bomb() {
    let c = Case::new("table bomb", "postStart", &wat("tablebomb.wat"), &[]);
    limit_case(
        c,
        "table limit 10000",
        "stopped: table limit of 10000 elements exceeded",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_deep_recursion() {
    let c = Case::new("deep recursion", "postStart", &wat("recurse.wat"), &[]);
    limit_case(c, "stack exhausted trap", "trapped: ").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_trap() {
    let c = Case::new("unreachable trap", "postStart", &wat("trap.wat"), &[]);
    limit_case(c, "trap with backtrace", "trapped: ").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_component_never_returns() {
    let c = Case::new(
        "component never returns",
        "postStart",
        &hostile("component-loop.wat"),
        &[],
    );
    limit_case(c, "timeout 1s", "stopped: timed out after 1s").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_output_flood() {
    // 1 GiB written: kept to the 1 MiB cap, the rest counted and dropped; either the hook gets
    // through it (success, truncated output) or the timeout stops it. Never unbounded memory.
    let c = Case::new("output flood 1 GiB", "postStart", &wat("flood.wat"), &[])
        .annotate("wasmhook.dev/hook-timeout", "20s");
    let r = run_case(&c).await;
    let h = r.hostile.hook("postStart").unwrap();
    assert!(
        h.output.len() <= (1 << 20) + 200,
        "output not capped: {} bytes",
        h.output.len()
    );
    let marker = String::from_utf8_lossy(&h.output[h.output.len().saturating_sub(120)..])
        .contains("output truncated");
    let observed = match &h.error {
        None => {
            assert!(marker, "truncated output has no marker");
            format!(
                "succeeded, output kept {} bytes + truncation marker",
                h.output.len() - 60.min(h.output.len())
            )
        }
        Some(e) => {
            assert!(e.contains("timed out"), "unexpected: {e}");
            "timed out at 20s".into()
        }
    };
    emit(c.name, "output capped at 1 MiB", &observed, r.hook_ms);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_network_reach_beyond_the_pod() {
    // Under `pod`, a hook tries the cloud metadata endpoint, another host, the node's DNS and a
    // redirect-free HTTP request off the pod: every attempt refused by the host and named in
    // the report; the hook itself ends normally.
    let netprobe = repo().join("examples/hooks/bin/netprobe.component.wasm");
    let probes = [
        "tcp:169.254.169.254:443",
        "tcp:10.0.0.1:22",
        "tcp:[2001:db8::1]:443",
        "lookup:example.com",
        "http:http://169.254.169.254/latest/meta-data/",
        "bind:0.0.0.0:2222",
    ];
    let c = Case::new(
        "network reach beyond the pod",
        "postStart",
        &netprobe,
        &probes,
    )
    .annotate("wasmhook.dev/hook-network", "pod");
    let r = run_case(&c).await;
    let h = r.hostile.hook("postStart").unwrap();
    assert_eq!(h.error, None, "netprobe ends normally: {:?}", h.error);
    let output = String::from_utf8_lossy(&h.output);
    let refused = output
        .lines()
        .filter(|l| l.starts_with("[wasmhook: network policy refused "))
        .count();
    assert_eq!(refused, probes.len(), "{output}");
    for line in output.lines().take(probes.len()) {
        assert!(
            line.ends_with(" err access-denied")
                || line.ends_with(" err destination-ip-prohibited"),
            "{output}"
        );
    }
    emit(
        c.name,
        "each attempt refused and reported",
        &format!(
            "{refused} of {} attempts refused, each named in the hook's output",
            probes.len()
        ),
        r.hook_ms,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_proc_exit_odd_codes() {
    for (file, code) in [
        ("exit255.wat", "255"),
        ("exit126.wat", "126"),
        ("exitneg1.wat", "-1"),
        ("exit1000.wat", "1000"),
    ] {
        let name = format!("proc_exit({code})");
        let c = Case::new(&name, "postStart", &hostile(file), &[]);
        let r = run_case(&c).await;
        let observed = assert_failed(&c, &r, "command '");
        // wasmtime-wasi refuses codes outside [0, 126) (a trap that loses the code); the
        // runtime's own proc_exit keeps them, as a process exit status would.
        assert!(
            observed.contains(&format!("exited with {code}:")),
            "{name}: {observed}"
        );
        emit(&name, &format!("exited with {code}"), &observed, r.hook_ms);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_huge_argv_and_env() {
    // 1 MiB of argv through the manifest: 1024 arguments of 1 KiB.
    let big: Vec<String> = (0..1024)
        .map(|i| format!("{i:04}{}", "a".repeat(1020)))
        .collect();
    let args: Vec<&str> = big.iter().map(String::as_str).collect();
    let c = Case::new("1 MiB argv", "postStart", &hostile("bigargs.wat"), &args);
    let r = run_case(&c).await;
    let h = r.hostile.hook("postStart").unwrap();
    assert_eq!(h.error, None, "1 MiB argv must work: {:?}", h.error);
    emit(c.name, "works", "succeeded", r.hook_ms);

    // 1 MiB of env through the container's env: 1024 variables of 1 KiB.
    let mut c = Case::new("1 MiB env", "postStart", &hostile("bigargs.wat"), &[]);
    c.container_extra = "    env:\n".to_string()
        + &(0..1024)
            .map(|i| format!("    - name: V{i}\n      value: \"{}\"\n", "e".repeat(1020)))
            .collect::<String>();
    let r = run_case(&c).await;
    let h = r.hostile.hook("postStart").unwrap();
    assert_eq!(h.error, None, "1 MiB env must work: {:?}", h.error);
    emit(c.name, "works", "succeeded", r.hook_ms);

    // 8 MiB of argv: more than the module can hold; it must fail clearly, not crash.
    let big: Vec<String> = (0..8192)
        .map(|i| format!("{i:05}{}", "b".repeat(1019)))
        .collect();
    let args: Vec<&str> = big.iter().map(String::as_str).collect();
    let c = Case::new("8 MiB argv", "postStart", &hostile("bigargs.wat"), &args);
    let r = run_case(&c).await;
    let observed = assert_failed(&c, &r, "command '");
    // The message repeats the 8 MiB command line: keep what follows it.
    let cause = observed
        .rsplit_once("' ")
        .map(|(_, rest)| format!("command '<8 MiB argv>' {rest}"))
        .unwrap_or(observed);
    emit(c.name, "fails clearly", &cause, r.hook_ms);
}

/// The volume and the host directory around it, with things planted in the volume.
struct Planted {
    tmp: TempDir,
    vol: PathBuf,
    outside: PathBuf,
}

fn planted(tag: &str) -> Planted {
    let tmp = TempDir::new(tag);
    let vol = tmp.sub("vol");
    let outside = tmp.sub("outside");
    std::fs::write(outside.join("secret"), "secret\n").unwrap();
    std::os::unix::fs::symlink(&outside, vol.join("dirlink")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret"), vol.join("filelink")).unwrap();
    std::os::unix::fs::symlink("../outside/secret", vol.join("rellink")).unwrap();
    std::fs::hard_link(outside.join("secret"), vol.join("hardlink")).unwrap();
    Planted { tmp, vol, outside }
}

fn volume_case<'a>(name: &'a str, pl: &Planted, path: &str, read_only: bool) -> Case<'a> {
    let mut c = Case::new(name, "postStart", &wat("open.wat"), &[path]);
    c.container_extra = format!(
        "    volumeMounts:\n    - name: data\n      mountPath: /data\n      readOnly: {read_only}\n"
    );
    c.spec_extra = format!(
        "  volumes:\n  - name: data\n    hostPath:\n      path: {}\n",
        p(&pl.vol)
    );
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_preopen_escapes() {
    let pl = planted("escape");
    let cases = [
        ("write ../outside/new", "../outside/new"),
        (
            "write /etc/wasmhook-escape (absolute)",
            "/etc/wasmhook-escape",
        ),
        ("write through dir symlink to outside", "dirlink/new"),
        ("write through file symlink to outside", "filelink"),
        ("write through relative symlink ../outside", "rellink"),
    ];
    for (name, path) in cases {
        let c = volume_case(name, &pl, path, false);
        let r = run_case(&c).await;
        let observed = assert_failed(&c, &r, "exited with");
        assert_eq!(
            std::fs::read_to_string(pl.outside.join("secret")).unwrap(),
            "secret\n",
            "{name}: the file outside changed"
        );
        assert!(!pl.outside.join("new").exists(), "{name}: created outside");
        assert!(!Path::new("/etc/wasmhook-escape").exists(), "{name}");
        emit(name, "refused (WASI errno)", &observed, r.hook_ms);
    }
    let _ = &pl.tmp;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_hard_link_out_of_the_volume() {
    // A hard link is a second name of the same inode: nothing about it says "outside", and
    // no path resolution can refuse it. If the host (or a container: it shares the volume
    // and the host filesystem) plants one, a hook writing the volume writes the file outside.
    // This is the same as for a real container with that volume; it is recorded as a finding.
    let pl = planted("hardlink");
    let c = volume_case("write through planted HARD link", &pl, "hardlink", false);
    let r = run_case(&c).await;
    let after = std::fs::read_to_string(pl.outside.join("secret")).unwrap();
    let observed = match r.hostile.hook("postStart").and_then(|h| h.error.clone()) {
        None if after == "ok\n" => "succeeded: the file OUTSIDE the volume was overwritten".into(),
        None => format!("succeeded, outside file now {after:?}"),
        Some(e) => format!("refused: {e}"),
    };
    emit(
        c.name,
        "leak (inherent to hard links)",
        &observed,
        r.hook_ms,
    );

    // Read-only mounts refuse writes, hard link or not.
    let pl = planted("readonly");
    for (name, path) in [
        ("write to readOnly mount", "new"),
        ("write hard link on readOnly mount", "hardlink"),
    ] {
        let c = volume_case(name, &pl, path, true);
        let r = run_case(&c).await;
        let observed = assert_failed(&c, &r, "exited with");
        assert!(!pl.vol.join("new").exists());
        assert_eq!(
            std::fs::read_to_string(pl.outside.join("secret")).unwrap(),
            "secret\n"
        );
        emit(name, "refused (WASI errno)", &observed, r.hook_ms);
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Bad input: fuzzed modules, broken manifests.
// ---------------------------------------------------------------------------------------------

/// Tight limits for fuzzed modules: whatever they do, a call ends in about 200 ms.
fn fuzz_limits() -> Limits {
    Limits {
        timeout: Duration::from_millis(200),
        fuel: Some(5_000_000),
        max_memory: 16 << 20,
        max_output: 4096,
        ..Limits::default()
    }
}

/// Load `bytes`; if they load, run them. Returns the outcome's name. Never panics unless the
/// runtime does (which proptest then reports with the input).
fn load_and_run(
    rt: &HookRuntime,
    tokio: &tokio::runtime::Runtime,
    bytes: &[u8],
    errors: &std::sync::Mutex<BTreeMap<String, usize>>,
) -> String {
    match rt.load_bytes("fuzz.wasm", bytes) {
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains("fuzz.wasm"),
                "error does not name the module: {msg}"
            );
            // Group by the message up to the first digit (offsets, sizes vary).
            let key: String = msg
                .chars()
                .map(|c| match c {
                    '0'..='9' => '#',
                    '\n' => ' ',
                    c => c,
                })
                .take(220)
                .collect();
            *errors.lock().unwrap().entry(key).or_default() += 1;
            "load-error".into()
        }
        Ok(m) => {
            let out = tokio.block_on(rt.run(
                &m,
                Invocation {
                    args: vec!["fuzz.wasm".into()],
                    limits: fuzz_limits(),
                    ..Invocation::default()
                },
            ));
            assert!(
                out.duration < Duration::from_secs(10),
                "a 200 ms call took {:?}",
                out.duration
            );
            out.status.name().to_string()
        }
    }
}

fn fuzz_runtime() -> (HookRuntime, tokio::runtime::Runtime) {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    (runtime(None), tokio)
}

/// Run `cases` inputs of `strategy` through [`load_and_run`]; print the tally.
fn fuzz<S: Strategy<Value = Vec<u8>>>(name: &str, cases: u32, strategy: S) {
    let (rt, tokio) = fuzz_runtime();
    let tally = std::sync::Mutex::new(BTreeMap::<String, usize>::new());
    let errors = std::sync::Mutex::new(BTreeMap::<String, usize>::new());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&strategy, |bytes| {
        let outcome = load_and_run(&rt, &tokio, &bytes, &errors);
        *tally.lock().unwrap().entry(outcome).or_default() += 1;
        Ok(())
    });
    let tally = tally.into_inner().unwrap();
    let total: usize = tally.values().sum();
    let summary: Vec<String> = tally.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("FUZZ|{name}|{total}|{}", summary.join(" "));
    let mut errors: Vec<_> = errors.into_inner().unwrap().into_iter().collect();
    errors.sort_by_key(|e| std::cmp::Reverse(e.1));
    for (msg, n) in errors.iter().take(3) {
        println!("FUZZ-ERROR|{name}|{n}|{}", msg.replace('|', " "));
    }
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
}

/// Every wasm binary we have: the WAT fixtures compiled, and the example hooks.
fn seed_modules() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for dir in [
        "tests/fixtures/wat",
        "tests/fixtures/hostile",
        "examples/hooks/bin",
    ] {
        let mut entries: Vec<_> = std::fs::read_dir(repo().join(dir))
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for path in entries {
            match path.extension().and_then(|e| e.to_str()) {
                Some("wat") => seeds.push(wat::parse_file(&path).expect("fixture parses")),
                Some("wasm") => seeds.push(std::fs::read(&path).unwrap()),
                _ => {}
            }
        }
    }
    assert!(seeds.len() >= 10);
    seeds
}

#[test]
fn fuzz_arbitrary_bytes_never_crash_the_loader() {
    // Half the inputs start with the wasm magic and version, so the parser gets past them;
    // some look like a precompiled ELF, which must be refused (allow_precompiled is off).
    let magic = proptest::collection::vec(any::<u8>(), 0..2048).prop_map(|mut v| {
        let mut out = b"\0asm\x01\0\0\0".to_vec();
        out.append(&mut v);
        out
    });
    let elf = proptest::collection::vec(any::<u8>(), 0..512).prop_map(|mut v| {
        let mut out = b"\x7fELF\x02\x01\x01\0".to_vec();
        out.append(&mut v);
        out
    });
    let strategy = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..2048),
        magic,
        elf,
        "\\PC{0,300}".prop_map(|s| format!("(module {s})").into_bytes()),
    ];
    fuzz("arbitrary bytes", 1500, strategy);
}

#[test]
fn fuzz_mutated_valid_modules() {
    let seeds = seed_modules();
    let n = seeds.len();
    let strategy = (
        0..n,
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..8),
    )
        .prop_map(move |(i, edits)| {
            let mut m = seeds[i].clone();
            for (at, byte, op) in edits {
                if m.is_empty() {
                    break;
                }
                let at = at.index(m.len());
                match op {
                    0 => m[at] = byte,
                    1 => m[at] ^= 1 << (byte % 8),
                    2 => m.truncate(at.max(8)),
                    _ => m.insert(at, byte),
                }
            }
            m
        });
    fuzz("mutated valid modules", 800, strategy);
}

#[test]
fn fuzz_generated_valid_modules_run_to_a_status() {
    // wasm-smith modules with exactly one export, `_start: [] -> []`, no imports, and the
    // proposals wasmtime is built without turned off: they must all load, and every call
    // must end in a status within the limits.
    let exports = wat::parse_str(r#"(module (func (export "_start")))"#).unwrap();
    let strategy = proptest::collection::vec(any::<u8>(), 64..4096).prop_map(move |seed| {
        let config = wasm_smith::Config {
            exports: Some(exports.clone()),
            max_imports: 0,
            gc_enabled: false,
            reference_types_enabled: false,
            exceptions_enabled: false,
            threads_enabled: false,
            wide_arithmetic_enabled: false,
            compact_imports_enabled: false,
            max_memory32_bytes: 32 << 20,
            ..wasm_smith::Config::default()
        };
        let mut u = arbitrary::Unstructured::new(&seed);
        match wasm_smith::Module::new(config, &mut u) {
            Ok(m) => m.to_bytes(),
            Err(_) => wat::parse_str(r#"(module (func (export "_start")))"#).unwrap(),
        }
    });
    fuzz("wasm-smith valid modules", 1000, strategy);
}

/// `wasmhook ARGS...` with a bound; (exit code, stdout, stderr, elapsed).
fn wasmhook(tmp: &Path, args: &[&str], limit: Duration) -> (Option<i32>, String, String, Duration) {
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .args(args)
        .env("TMPDIR", tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wasmhook");
    let out = drain(child.stdout.take().unwrap());
    let err = drain(child.stderr.take().unwrap());
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    assert!(
        status.is_some(),
        "wasmhook {args:?} hung; killed\n{out}\n{err}"
    );
    assert!(!err.contains("panicked"), "wasmhook panicked:\n{err}");
    (status.unwrap().code(), out, err, elapsed)
}

fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

fn pod_with_hook(name: &str, module: &str, annotations: &[(&str, &str)]) -> String {
    let ann: String = annotations
        .iter()
        .map(|(k, v)| format!("    {k}: {}\n", serde_json::to_string(v).unwrap()))
        .collect();
    let ann = if ann.is_empty() {
        String::new()
    } else {
        format!("  annotations:\n{ann}")
    };
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n{ann}spec:\n  containers:\n  \
         - name: app\n    image: busybox\n    command: [\"sleep\", \"3600\"]\n    lifecycle:\n      \
         postStart:\n        exec:\n          command: [{}]\n",
        serde_json::to_string(module).unwrap()
    )
}

#[test]
fn bad_manifests_fail_clearly_naming_the_file() {
    let tmp = TempDir::new("badinput");
    let d = tmp.path();
    std::fs::write(d.join("garbage.wasm"), b"\0asm\x01\0\0\0\x01\xff\xff\xff").unwrap();
    std::fs::write(d.join("empty.wasm"), b"").unwrap();
    std::fs::write(
        d.join("syntax.wat"),
        b"(module (func (export \"_start\") (i32.add)))",
    )
    .unwrap();
    std::fs::write(d.join("elf.cwasm"), b"\x7fELF\x02\x01\x01\0garbage").unwrap();
    std::fs::create_dir(d.join("dir.wasm")).unwrap();
    let fifo = d.join("fifo.wasm");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    std::os::unix::fs::symlink(d.join("nowhere.wasm"), d.join("dangling.wasm")).unwrap();
    let hello = p(&wat("hello.wat")).to_string();
    let nostart = p(&wat("nostart.wat")).to_string();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "missing module",
            pod_with_hook("a", "missing.wasm", &[]),
            "missing.wasm",
        ),
        (
            "directory as module",
            pod_with_hook("a", "dir.wasm", &[]),
            "dir.wasm",
        ),
        (
            "FIFO as module",
            pod_with_hook("a", "fifo.wasm", &[]),
            "fifo.wasm",
        ),
        (
            "dangling symlink as module",
            pod_with_hook("a", "dangling.wasm", &[]),
            "dangling.wasm",
        ),
        (
            "module fails to compile",
            pod_with_hook("a", "garbage.wasm", &[]),
            "garbage.wasm",
        ),
        (
            "empty module file",
            pod_with_hook("a", "empty.wasm", &[]),
            "empty.wasm",
        ),
        (
            "WAT that does not type-check",
            pod_with_hook("a", "syntax.wat", &[]),
            "syntax.wat",
        ),
        (
            "precompiled .cwasm not allowed",
            pod_with_hook("a", "elf.cwasm", &[]),
            "elf.cwasm",
        ),
        (
            "module without _start",
            pod_with_hook("a", &nostart, &[]),
            "nostart.wat",
        ),
        (
            "negative hook-timeout",
            pod_with_hook("a", &hello, &[("wasmhook.dev/hook-timeout", "-1s")]),
            "wasmhook.dev/hook-timeout",
        ),
        (
            "hook-timeout not a duration",
            pod_with_hook("a", &hello, &[("wasmhook.dev/hook-timeout", "forever")]),
            "wasmhook.dev/hook-timeout",
        ),
        (
            "hook-fuel 0",
            pod_with_hook("a", &hello, &[("wasmhook.dev/hook-fuel", "0")]),
            "wasmhook.dev/hook-fuel",
        ),
        (
            "hook-fuel overflow",
            pod_with_hook(
                "a",
                &hello,
                &[("wasmhook.dev/hook-fuel", "99999999999999999999999")],
            ),
            "wasmhook.dev/hook-fuel",
        ),
        (
            "hook-network allow-list entry malformed",
            pod_with_hook(
                "a",
                &hello,
                &[("wasmhook.dev/hook-network", "127.0.0.1:8080,10.0.0.1/8")],
            ),
            "wasmhook.dev/hook-network",
        ),
        (
            "hook-max-memory garbage",
            pod_with_hook("a", &hello, &[("wasmhook.dev/hook-max-memory", "lots")]),
            "wasmhook.dev/hook-max-memory",
        ),
        (
            "hook-max-memory huge",
            pod_with_hook(
                "a",
                &hello,
                &[("wasmhook.dev/hook-max-memory", "99999999Ei")],
            ),
            "wasmhook.dev/hook-max-memory",
        ),
        (
            "misspelt annotation key",
            pod_with_hook("a", &hello, &[("wasmhook.dev/hook-tiemout", "1s")]),
            "wasmhook.dev/hook-tiemout",
        ),
        (
            "annotation for unknown container",
            pod_with_hook("a", &hello, &[("wasmhook.dev/hook-timeout.nope", "1s")]),
            "hook-timeout.nope",
        ),
        (
            "bad hook kind suffix",
            pod_with_hook(
                "a",
                &hello,
                &[("wasmhook.dev/hook-timeout.app.onStart", "1s")],
            ),
            "onStart",
        ),
        ("not YAML", "{{{{ : : ]]".to_string(), "pod.yaml"),
        (
            "binary garbage manifest",
            "\u{0}\u{1}\u{2}\u{fffd}".to_string(),
            "pod.yaml",
        ),
    ];
    for (name, yaml, names) in cases {
        let manifest = d.join("pod.yaml");
        std::fs::write(&manifest, &yaml).unwrap();
        for cmd in ["validate", "run"] {
            let args: Vec<&str> = match cmd {
                "validate" => vec!["validate", p(&manifest)],
                _ => vec!["run", "--no-cache", "--stop-after", "1s", p(&manifest)],
            };
            let (code, out, err, took) = wasmhook(d, &args, Duration::from_secs(30));
            // `validate` reports on stdout, `run` on stderr.
            let err = format!("{out}{err}");
            let first = err.lines().find(|l| l.contains(names)).unwrap_or("");
            let ok = code == Some(2) && !first.is_empty();
            if cmd == "validate" {
                emit(
                    &format!("bad input: {name}"),
                    "exit 2, error names the file/key",
                    &format!(
                        "exit {}: {}",
                        code.map_or("signal".into(), |c| c.to_string()),
                        if first.is_empty() { err.trim() } else { first }
                    ),
                    took.as_millis(),
                );
            }
            assert!(ok, "{name} ({cmd}): exit {code:?}, stderr:\n{err}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Faults, through the binary.
// ---------------------------------------------------------------------------------------------

/// JSON lines of a run's stdout.
fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn events_of(lines: &[Value]) -> Vec<(String, String)> {
    lines
        .iter()
        .filter(|v| v.get("kind").is_none() && v.get("reason").is_some())
        .map(|v| {
            (
                v["reason"].as_str().unwrap_or("").to_string(),
                v["message"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn hooks_of(lines: &[Value]) -> Vec<Value> {
    lines
        .iter()
        .filter(|v| v["kind"] == "HookResult")
        .cloned()
        .collect()
}

fn sleeper(name: &str, extra_spec: &str, lifecycle: &str, annotations: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n{annotations}spec:\n{extra_spec}  \
         containers:\n  - name: app\n    image: busybox\n    command: [\"sleep\", \"3600\"]\n{lifecycle}"
    )
}

#[test]
fn fault_container_command_not_found() {
    let tmp = TempDir::new("notfound");
    for policy in ["Never", "Always"] {
        let m = tmp.path().join(format!("{policy}.yaml"));
        std::fs::write(
            &m,
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: nf\nspec:\n  restartPolicy: {policy}\n  \
                 containers:\n  - name: app\n    image: busybox\n    command: [\"/nonexistent/cmd\"]\n"
            ),
        )
        .unwrap();
        let (code, out, err, took) = wasmhook(
            tmp.path(),
            &[
                "run",
                "--output",
                "json",
                "--no-cache",
                "--backoff-scale",
                "0.02",
                "--stop-after",
                "3s",
                p(&m),
            ],
            Duration::from_secs(30),
        );
        let lines = json_lines(&out);
        let ev = events_of(&lines);
        let failed = ev
            .iter()
            .find(|(r, _)| r == "Failed")
            .unwrap_or_else(|| panic!("no Failed event: {ev:?}\n{err}"));
        assert!(failed.1.starts_with("Error: "), "{failed:?}");
        let backoffs = ev.iter().filter(|(r, _)| r == "BackOff").count();
        if policy == "Always" {
            assert!(
                backoffs >= 1,
                "no BackOff with restartPolicy Always: {ev:?}"
            );
        } else {
            assert_eq!(backoffs, 0, "{ev:?}");
        }
        assert!(lines.iter().any(|v| v["kind"] == "PodStatus"));
        emit(
            &format!("container command not found ({policy})"),
            "Failed \"Error: …\", restart per policy",
            &format!(
                "exit {code:?}; Failed: {}; BackOff events: {backoffs}",
                failed.1
            ),
            took.as_millis(),
        );
    }
}

#[test]
fn fault_container_exits_at_once() {
    let tmp = TempDir::new("exits");
    let m = tmp.path().join("pod.yaml");
    std::fs::write(
        &m,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: quick\nspec:\n  restartPolicy: Always\n  \
         containers:\n  - name: app\n    image: busybox\n    command: [\"false\"]\n",
    )
    .unwrap();
    let (code, out, _err, took) = wasmhook(
        tmp.path(),
        &[
            "run",
            "--output",
            "json",
            "--no-cache",
            "--backoff-scale",
            "0.02",
            "--stop-after",
            "3s",
            p(&m),
        ],
        Duration::from_secs(30),
    );
    let lines = json_lines(&out);
    let ev = events_of(&lines);
    let started = ev.iter().filter(|(r, _)| r == "Started").count();
    let backoffs = ev.iter().filter(|(r, _)| r == "BackOff").count();
    assert!(started >= 2 && backoffs >= 1, "{ev:?}");
    let st = lines.iter().find(|v| v["kind"] == "PodStatus").unwrap();
    let restarts = st["containers"][0]["restartCount"].as_u64().unwrap_or(0);
    assert!(restarts >= 1, "{st}");
    emit(
        "container exits at once (Always)",
        "restarts with back-off",
        &format!("exit {code:?}; Started x{started}, BackOff x{backoffs}, restartCount {restarts}"),
        took.as_millis(),
    );
}

/// A TCP server on 127.0.0.1 that accepts and then stalls (holds every connection, never
/// answers) or closes each connection as soon as the request arrived.
fn bad_server(stall: bool) -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            if stall {
                held.push(s);
            } else {
                let mut s = s;
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                drop(s);
            }
        }
    });
    port
}

#[test]
fn fault_hook_server_stalls_or_closes() {
    let tmp = TempDir::new("httpstall");
    for (name, stall) in [
        ("httpGet server stalls", true),
        ("httpGet server closes", false),
    ] {
        let port = bad_server(stall);
        let m = tmp.path().join("pod.yaml");
        std::fs::write(
            &m,
            sleeper(
                "web",
                "  terminationGracePeriodSeconds: 2\n  restartPolicy: Never\n",
                &format!(
                    "    lifecycle:\n      postStart:\n        httpGet:\n          host: 127.0.0.1\n          \
                     port: {port}\n          path: /hook\n"
                ),
                "  annotations:\n    wasmhook.dev/hook-timeout: 1s\n",
            ),
        )
        .unwrap();
        let (code, out, err, took) = wasmhook(
            tmp.path(),
            &[
                "run",
                "--output",
                "json",
                "--no-cache",
                "--stop-after",
                "15s",
                p(&m),
            ],
            Duration::from_secs(40),
        );
        let lines = json_lines(&out);
        let ev = events_of(&lines);
        assert!(
            ev.iter().any(|(r, _)| r == "FailedPostStartHook"),
            "{name}: {ev:?}\n{err}"
        );
        let hooks = hooks_of(&lines);
        let h = hooks
            .iter()
            .find(|h| h["hook"] == "postStart")
            .expect("HookResult");
        let msg = h["error"].as_str().unwrap_or("").to_string();
        let ms = h["durationMs"]
            .as_u64()
            .or_else(|| h["duration_ms"].as_u64())
            .map(u128::from)
            .unwrap_or(took.as_millis());
        assert!(
            took < Duration::from_secs(14),
            "{name}: the run took {took:?}"
        );
        emit(
            name,
            "FailedPostStartHook within the 1s hook timeout",
            &format!("exit {code:?}: {msg}"),
            ms,
        );
    }
}

fn hello_pod(name: &str) -> String {
    sleeper(
        name,
        "  terminationGracePeriodSeconds: 2\n",
        &format!(
            "    lifecycle:\n      postStart:\n        exec:\n          command: [{}]\n",
            serde_json::to_string(p(&wat("hello.wat"))).unwrap()
        ),
        "",
    )
}

#[test]
fn fault_unusable_or_corrupt_cache_dir() {
    let tmp = TempDir::new("cache");
    let m = tmp.path().join("pod.yaml");
    std::fs::write(&m, hello_pod("cached")).unwrap();
    let run = |cache: &Path| {
        wasmhook(
            tmp.path(),
            &[
                "run",
                "--output",
                "json",
                "--cache-dir",
                p(cache),
                "--stop-after",
                "1s",
                p(&m),
            ],
            Duration::from_secs(40),
        )
    };
    let check = |name: &str, r: (Option<i32>, String, String, Duration)| {
        let (code, out, err, took) = r;
        let lines = json_lines(&out);
        let hooks = hooks_of(&lines);
        assert!(
            hooks
                .iter()
                .any(|h| h["hook"] == "postStart" && h["error"].is_null()),
            "{name}: hook did not succeed\n{out}\n{err}"
        );
        assert_eq!(code, Some(0), "{name}\n{err}");
        assert!(
            !err.contains('\u{1b}'),
            "{name}: terminal escape codes in a captured stderr:\n{err}"
        );
        let warning = err
            .lines()
            .find(|l| l.contains("warning") || l.contains("cache"));
        emit(
            name,
            "run works, warning only",
            &format!(
                "exit 0, hook ok; stderr: {}",
                warning.unwrap_or("(nothing)")
            ),
            took.as_millis(),
        );
    };
    // A file where the cache directory should be.
    let file = tmp.path().join("cache-file");
    std::fs::write(&file, "not a directory").unwrap();
    check("cache dir is a file", run(&file));
    // A cache directory below a file (cannot be created).
    check("cache dir below a file", run(&file.join("sub")));
    // A corrupted cache: fill it, then overwrite every entry with garbage, add junk files.
    let cache = tmp.sub("cache");
    check("cache populated", run(&cache));
    let mut corrupted = 0;
    let mut stack = vec![cache.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let path = e.path();
            if path.is_dir() {
                std::fs::write(path.join("junk.cwasm"), b"\x7fELF garbage").unwrap();
                std::fs::write(path.join("zero.cwasm"), b"").unwrap();
                stack.push(path);
            } else {
                std::fs::write(&path, b"WASMHOOK? garbage garbage").unwrap();
                corrupted += 1;
            }
        }
    }
    assert!(corrupted >= 1, "nothing was cached in {}", cache.display());
    check("compile cache corrupted", run(&cache));
}

/// A running `wasmhook run` whose stdout is read as it comes.
struct Live {
    child: std::process::Child,
    out: Arc<std::sync::Mutex<String>>,
    err: std::thread::JoinHandle<String>,
    reader: std::thread::JoinHandle<()>,
}

fn live(tmp: &Path, manifest: &Path) -> Live {
    let mut child = Command::new(BIN)
        .args(["run", "--output", "json", "--no-cache", p(manifest)])
        .env("TMPDIR", tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let out = out.clone();
        let mut stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                out.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    let err = drain(child.stderr.take().unwrap());
    Live {
        child,
        out,
        err,
        reader,
    }
}

impl Live {
    fn wait_for(&mut self, needle: &str, limit: Duration) {
        let start = Instant::now();
        while !self.out.lock().unwrap().contains(needle) {
            let exited = self.child.try_wait().unwrap();
            assert!(
                start.elapsed() < limit && exited.is_none(),
                "never saw {needle} (exit: {exited:?})\n{}",
                self.out.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn sigint(&self) {
        let st = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// Wait for the exit (bounded); (code, stdout, stderr, time from `since`).
    fn finish(
        mut self,
        since: Instant,
        limit: Duration,
    ) -> (Option<i32>, String, String, Duration) {
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break Some(st);
            }
            if since.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let took = since.elapsed();
        self.reader.join().unwrap();
        let out = self.out.lock().unwrap().clone();
        let err = self.err.join().unwrap();
        assert!(
            status.is_some(),
            "did not exit within {limit:?}\n{out}\n{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        (status.unwrap().code(), out, err, took)
    }
}

#[test]
fn fault_sigint_during_post_start_sleep() {
    let tmp = TempDir::new("sigint-ps");
    let m = tmp.path().join("pod.yaml");
    std::fs::write(
        &m,
        sleeper(
            "slowstart",
            "  terminationGracePeriodSeconds: 40\n",
            "    lifecycle:\n      postStart:\n        sleep:\n          seconds: 30\n",
            "",
        ),
    )
    .unwrap();
    let mut run = live(tmp.path(), &m);
    run.wait_for("\"Started\"", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(300));
    // As the kubelet: a stop does not interrupt postStart, and its container is stopped only
    // after it; a second SIGINT kills at once, the hook with it.
    run.sigint();
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !run.out.lock().unwrap().contains("\"Killing\""),
        "the container was killed during its postStart"
    );
    let t = Instant::now();
    run.sigint();
    let (code, out, err, took) = run.finish(t, Duration::from_secs(20));
    let lines = json_lines(&out);
    let hooks = hooks_of(&lines);
    let h = hooks
        .iter()
        .find(|h| h["hook"] == "postStart")
        .unwrap_or_else(|| panic!("postStart HookResult lost\n{out}\n{err}"));
    let ev = events_of(&lines);
    assert!(
        lines.iter().any(|v| v["kind"] == "PodStatus"),
        "PodStatus lost"
    );
    assert!(
        took < Duration::from_secs(8),
        "stop took {took:?}, not prompt"
    );
    emit(
        "SIGINT, then a second one, during postStart sleep 30s",
        "postStart not interrupted by the stop; the kill is prompt, HookResult kept",
        &format!(
            "exit {code:?}; postStart: {}; events: {}",
            h["error"].as_str().unwrap_or("ok"),
            ev.iter()
                .map(|(r, _)| r.as_str())
                .collect::<Vec<_>>()
                .join(",")
        ),
        took.as_millis(),
    );
}

/// A preStop `sleep 30` (the API wants it below the grace, so grace 31); `timeout` bounds it.
fn pre_stop_sleeper(timeout: &str) -> String {
    sleeper(
        "slowstop",
        "  terminationGracePeriodSeconds: 31\n",
        "    lifecycle:\n      preStop:\n        sleep:\n          seconds: 30\n",
        &format!("  annotations:\n    wasmhook.dev/hook-timeout: {timeout}\n"),
    )
}

#[test]
fn fault_sigint_during_pre_stop_once_and_twice() {
    let tmp = TempDir::new("sigint-stop");
    // Once: the preStop sleep is bounded by its hook timeout (3 s).
    let m = tmp.path().join("once.yaml");
    std::fs::write(&m, pre_stop_sleeper("3s")).unwrap();
    let mut run = live(tmp.path(), &m);
    run.wait_for("\"Started\"", Duration::from_secs(20));
    let t = Instant::now();
    run.sigint();
    let (code, out, _err, took) = run.finish(t, Duration::from_secs(30));
    let lines = json_lines(&out);
    let h = hooks_of(&lines)
        .into_iter()
        .find(|h| h["hook"] == "preStop")
        .expect("preStop HookResult");
    assert!(took < Duration::from_secs(12), "{took:?}");
    emit(
        "SIGINT once during preStop sleep 30s (hook-timeout 3s)",
        "preStop cut at its timeout, then stop",
        &format!(
            "exit {code:?}; preStop: {}; events: {}",
            h["error"].as_str().unwrap_or("ok"),
            events_of(&lines)
                .iter()
                .map(|(r, _)| r.as_str())
                .collect::<Vec<_>>()
                .join(",")
        ),
        took.as_millis(),
    );

    // Twice: the second SIGINT kills at once, even with a 30 s grace.
    let m = tmp.path().join("twice.yaml");
    std::fs::write(&m, pre_stop_sleeper("60s")).unwrap();
    let mut run = live(tmp.path(), &m);
    run.wait_for("\"Started\"", Duration::from_secs(20));
    run.sigint();
    run.wait_for("\"Killing\"", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    run.sigint();
    let (code, out, err, took) = run.finish(t, Duration::from_secs(30));
    let lines = json_lines(&out);
    let h = hooks_of(&lines)
        .into_iter()
        .find(|h| h["hook"] == "preStop")
        .unwrap_or_else(|| panic!("preStop HookResult lost on the second SIGINT\n{out}\n{err}"));
    assert!(
        lines.iter().any(|v| v["kind"] == "PodStatus"),
        "PodStatus lost"
    );
    assert!(took < Duration::from_secs(5), "second SIGINT took {took:?}");
    emit(
        "second SIGINT during preStop (grace 31)",
        "kill at once, HookResult kept",
        &format!(
            "exit {code:?}; preStop: {}",
            h["error"].as_str().unwrap_or("ok")
        ),
        took.as_millis(),
    );
}

#[test]
fn fault_sleep_hook_is_bounded_by_its_timeout() {
    // The handlers' invariant (no hook outlives its timeout) holds for `sleep` too.
    let tmp = TempDir::new("sleep-timeout");
    let m = tmp.path().join("pod.yaml");
    std::fs::write(
        &m,
        sleeper(
            "sleepy",
            "  terminationGracePeriodSeconds: 40\n  restartPolicy: Never\n",
            "    lifecycle:\n      postStart:\n        sleep:\n          seconds: 30\n",
            "  annotations:\n    wasmhook.dev/hook-timeout: 1s\n",
        ),
    )
    .unwrap();
    let (code, out, err, took) = wasmhook(
        tmp.path(),
        &[
            "run",
            "--output",
            "json",
            "--no-cache",
            "--stop-after",
            "20s",
            p(&m),
        ],
        Duration::from_secs(40),
    );
    let lines = json_lines(&out);
    let ev = events_of(&lines);
    assert!(
        ev.iter().any(|(r, _)| r == "FailedPostStartHook"),
        "{ev:?}\n{err}"
    );
    let h = hooks_of(&lines)
        .into_iter()
        .find(|h| h["hook"] == "postStart")
        .expect("HookResult");
    let msg = h["error"].as_str().unwrap_or("").to_string();
    assert!(msg.contains("timed out after 1s"), "{msg}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    emit(
        "postStart sleep 30s, hook-timeout 1s",
        "FailedPostStartHook at 1s",
        &format!("exit {code:?}: {msg}"),
        took.as_millis(),
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Soak: many pods with hooks on one engine, resources back to baseline.
//    `SOAK_SECONDS=120 cargo test --release --test reliability soak -- --ignored --nocapture`
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
struct Usage {
    fds: usize,
    threads: usize,
    children: usize,
    rss_kib: usize,
    temp_entries: usize,
}

fn usage(tmp: &Path) -> Usage {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| -> usize {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let me = std::process::id().to_string();
    let children = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1).map(|pp| pp == me))
                .unwrap_or(false)
        })
        .count();
    Usage {
        fds: std::fs::read_dir("/proc/self/fd").unwrap().count(),
        threads: field("Threads:"),
        children,
        rss_kib: field("VmRSS:"),
        temp_entries: std::fs::read_dir(tmp).map(|d| d.count()).unwrap_or(0),
    }
}

fn soak_pod(name: &str, hostile_hook: bool) -> String {
    if hostile_hook {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  annotations:\n    \
             wasmhook.dev/hook-timeout: 200ms\nspec:\n  terminationGracePeriodSeconds: 2\n  \
             restartPolicy: Never\n  containers:\n  - name: app\n    image: busybox\n    \
             command: [\"sleep\", \"3600\"]\n    lifecycle:\n      postStart:\n        exec:\n          \
             command: [{}]\n",
            serde_json::to_string(p(&wat("loop.wat"))).unwrap()
        )
    } else {
        good_pod(name)
    }
}

#[test]
#[ignore = "soak: run by scripts/soak.sh"]
fn soak() {
    let seconds: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let concurrency: usize = std::env::var("SOAK_CONCURRENCY")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let work = TempDir::new("soak");
    let private_tmp = work.sub("tmp");
    // The process backend puts sandbox directories under $TMPDIR: count them there. (This
    // test runs alone: nothing else reads the environment concurrently.)
    std::env::set_var("TMPDIR", &private_tmp);
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_keep_alive(Duration::from_millis(500))
        .enable_all()
        .build()
        .unwrap();
    let rt = runtime(None);
    let manifest = work.path().join("pods.yaml");
    let docs: Vec<String> = (0..concurrency)
        .map(|i| soak_pod(&format!("soak-{i}"), i == concurrency - 1))
        .collect();
    std::fs::write(&manifest, docs.join("---\n")).unwrap();
    let pods = load_pods(&rt, &manifest);
    let engine = engine(rt);

    let (mut pods_run, mut hooks_ok, mut hooks_failed, mut unexpected) = (0usize, 0, 0, 0);
    let batch = |engine: &Engine| {
        tokio.block_on(async {
            let (recorder, mut rx) = Recorder::channel();
            let handles: Vec<_> = pods
                .iter()
                .map(|p| engine.start_pod(p, recorder.clone()))
                .collect();
            drop(recorder);
            tokio::time::sleep(Duration::from_millis(300)).await;
            for h in &handles {
                h.stop(None);
            }
            for h in handles {
                tokio::time::timeout(Duration::from_secs(30), h.wait())
                    .await
                    .expect("a soak pod hung");
            }
            let mut recs = Vec::new();
            while let Some(r) = rx.recv().await {
                recs.push(r);
            }
            recs
        })
    };
    // Warm-up: pools, lazily created threads and the compiled modules exist from here on.
    let _ = batch(&engine);
    std::thread::sleep(Duration::from_secs(1));
    let before = usage(&private_tmp);
    let started = Instant::now();
    let mut peak = before;
    while started.elapsed() < Duration::from_secs(seconds) {
        let recs = batch(&engine);
        pods_run += pods.len();
        for (pod, r) in split_records(recs) {
            let hostile = pod == format!("soak-{}", concurrency - 1);
            for h in &r.hooks {
                if h.error.is_none() {
                    hooks_ok += 1;
                } else {
                    hooks_failed += 1;
                    if !hostile {
                        unexpected += 1;
                        eprintln!("unexpected hook failure in {pod}: {:?}", h.error);
                    }
                }
            }
            let want_hooks = if hostile { 1 } else { 2 };
            if r.hooks.len() != want_hooks {
                unexpected += 1;
                eprintln!("{pod}: {} hook results, want {want_hooks}", r.hooks.len());
            }
        }
        let u = usage(&private_tmp);
        peak = Usage {
            fds: peak.fds.max(u.fds),
            threads: peak.threads.max(u.threads),
            children: peak.children.max(u.children),
            rss_kib: peak.rss_kib.max(u.rss_kib),
            temp_entries: peak.temp_entries.max(u.temp_entries),
        };
    }
    let elapsed = started.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let after = usage(&private_tmp);
    println!("SOAK-COUNT|seconds|{}", elapsed.as_secs());
    println!("SOAK-COUNT|pods per batch|{concurrency}");
    println!("SOAK-COUNT|pods run|{pods_run}");
    println!("SOAK-COUNT|hooks succeeded|{hooks_ok}");
    println!("SOAK-COUNT|hooks failed (all by the hostile pod's timeout)|{hooks_failed}");
    println!("SOAK-COUNT|unexpected (failed good hooks, missing results)|{unexpected}");
    for (name, b, a, pk) in [
        ("open fds", before.fds, after.fds, peak.fds),
        ("threads", before.threads, after.threads, peak.threads),
        (
            "child processes",
            before.children,
            after.children,
            peak.children,
        ),
        ("RSS KiB", before.rss_kib, after.rss_kib, peak.rss_kib),
        (
            "TMPDIR entries",
            before.temp_entries,
            after.temp_entries,
            peak.temp_entries,
        ),
    ] {
        println!("SOAK|{name}|{b}|{a}|peak {pk}");
    }
    assert_eq!(unexpected, 0);
    assert!(pods_run > 0);
    assert!(
        after.fds <= before.fds + 4,
        "fd leak: {before:?} -> {after:?}"
    );
    assert!(
        after.threads <= before.threads + 4,
        "thread leak: {before:?} -> {after:?}"
    );
    assert_eq!(after.children, before.children, "child processes left");
    assert_eq!(
        after.temp_entries, before.temp_entries,
        "sandbox directories left"
    );
    assert!(
        after.rss_kib <= before.rss_kib + before.rss_kib / 2 + 32 * 1024,
        "RSS grew: {before:?} -> {after:?}"
    );
    drop(engine);
}
