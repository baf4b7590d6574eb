//! The sequential-call rows: native execs and spawns, and wasm hook calls alone.

use std::time::{Duration, Instant};

use wasmhook::backend::{Backend, ContainerSpec, ProcessBackend, SandboxSpec};
use wasmhook::events::PodRef;
use wasmhook::wasm::{HookRuntime, Invocation};

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

/// `calls` bare calls as a postStart hook makes them: each right after a process was started
/// (a `sleep` that keeps running, as the container does). A call made straight after a
/// spawn finds the CPU caches cold and the new process loading on the other core, so it
/// costs several times a call in a tight loop (measured: 30-40 µs against 4-6 µs on 2
/// cores). This is the like-for-like baseline of a postStart hook's reported duration.
/// Returns the median call.
pub(crate) async fn wasm_calls_after_start(rt: &HookRuntime, calls: usize) -> Duration {
    let module = rt.load_file(&noop_path()).expect("load noop.wat");
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
        let inv = Invocation {
            args: vec!["noop.wat".into()],
            ..Default::default()
        };
        assert!(rt.run(&module, inv).await.is_success());
        durations.push(t.elapsed());
    }
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
    median_duration(durations)
}
