//! Reliability and security (issue 8): hostile hooks run *inside pods* on one engine next to a
//! well-behaved pod, bad input (fuzzed modules, broken manifests), faults through the binary,
//! and a bounded soak (`#[ignore]`d: `scripts/soak.sh`).
//!
//! The runtime-level hostile-hook tests live in `tests/wasm_runtime/`; these check what the
//! *engine* makes of the same hooks: the event, the `HookResult` error naming the cause, how
//! long the hook took to stop, and that a neighbour pod on the same engine is unaffected.
//!
//! Every catalogue case prints one machine-readable line (run with `--nocapture`):
//! `RELIABILITY|case|expected|observed|ms`; fuzz tests print `FUZZ|name|inputs|outcomes`;
//! the soak prints `SOAK|metric|before|after`. `scripts/reliability-report.sh` collects them.

#[path = "../common/mod.rs"]
mod common;

mod bad_input;
mod catalogue;
mod faults;
mod soak;

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
