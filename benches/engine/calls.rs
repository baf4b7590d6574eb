//! The sequential-call rows: native execs and spawns, and wasm hook calls alone.

use std::future::Future;
use std::time::{Duration, Instant};

use wasmhook::backend::{Backend, ContainerSpec, ProcessBackend, SandboxSpec};
use wasmhook::events::PodRef;
use wasmhook::wasm::{HookRuntime, Invocation};

use super::common::bare::Bare;
use super::{median_duration, noop_path, peak_rss_mib, reset_peak_rss, Sample};

/// 2N sequential native execs through the process backend, on one running container.
pub(crate) async fn backend_execs(calls: usize) -> Sample {
    let backend = ProcessBackend::default();
    let pod = PodRef {
        name: "bench-exec".into(),
        namespace: "default".into(),
        uid: "bench-exec-uid".into(),
    };
    reset_peak_rss();
    let sandbox = backend
        .create_sandbox(&SandboxSpec {
            pod,
            volumes: Vec::new(),
        })
        .await
        .expect("sandbox");
    let id = backend
        .create_container(
            &sandbox,
            &ContainerSpec {
                name: "app".into(),
                argv: vec!["sleep".into(), "1000".into()],
                ..Default::default()
            },
        )
        .await
        .expect("container");
    backend.start_container(&id).await.expect("start");
    let argv = vec!["/bin/true".to_string()];
    let t0 = Instant::now();
    for _ in 0..calls {
        let out = backend
            .exec(&id, &argv, Duration::from_secs(10))
            .await
            .expect("exec");
        assert_eq!(out.exit_code, 0);
    }
    let elapsed = t0.elapsed();
    backend
        .remove_sandbox(&sandbox)
        .await
        .expect("remove sandbox");
    Sample {
        start: elapsed,
        stop: Duration::ZERO,
        peak_mib: peak_rss_mib(),
    }
}

pub(crate) fn spawns(calls: usize) -> Sample {
    reset_peak_rss();
    let t0 = Instant::now();
    for _ in 0..calls {
        let s = std::process::Command::new("/bin/true").status().unwrap();
        assert!(s.success());
    }
    Sample {
        start: t0.elapsed(),
        stop: Duration::ZERO,
        peak_mib: peak_rss_mib(),
    }
}

pub(crate) async fn wasm_calls(rt: &HookRuntime, calls: usize) -> Sample {
    let module = rt.load_file(&noop_path()).expect("load noop.wat");
    reset_peak_rss();
    let t0 = Instant::now();
    for _ in 0..calls {
        let inv = Invocation {
            args: vec!["noop.wat".into()],
            ..Default::default()
        };
        assert!(rt.run(&module, inv).await.is_success());
    }
    Sample {
        start: t0.elapsed(),
        stop: Duration::ZERO,
        peak_mib: peak_rss_mib(),
    }
}

/// `calls` calls of `call` as a postStart hook makes them: each right after a process was
/// started (a `sleep` that keeps running, as the container does). A call made straight
/// after a spawn finds the CPU caches cold and the new process loading on the other core,
/// so it costs several times a call in a tight loop (measured: 30-40 µs against 4-6 µs on 2
/// cores). Returns the median call.
async fn calls_after_start<F: Future<Output = ()>>(
    calls: usize,
    mut call: impl FnMut() -> F,
) -> Duration {
    let mut children = Vec::with_capacity(calls);
    let mut durations = Vec::with_capacity(calls);
    for _ in 0..calls {
        children.push(
            std::process::Command::new("sleep")
                .arg("1000")
                .spawn()
                .expect("spawn sleep"),
        );
        let t = Instant::now();
        call().await;
        durations.push(t.elapsed());
    }
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
    median_duration(durations)
}

/// `HookRuntime::run` of `noop.wat`, each call right after a process start: the
/// like-for-like baseline of a postStart hook's reported duration.
pub(crate) async fn wasm_calls_after_start(rt: &HookRuntime, calls: usize) -> Duration {
    let module = &rt.load_file(&noop_path()).expect("load noop.wat");
    calls_after_start(calls, move || {
        let inv = Invocation {
            args: vec!["noop.wat".into()],
            ..Default::default()
        };
        async move { assert!(rt.run(module, inv).await.is_success()) }
    })
    .await
}

/// Bare wasmtime's call of `noop.wat` in the same conditions: wasmtime's own floor for a
/// hook made right after a process start.
pub(crate) async fn bare_calls_after_start(bare: &Bare, calls: usize) -> Duration {
    calls_after_start(calls, || async {
        bare.call().await.expect("bare wasmtime call");
    })
    .await
}
