//! Pods through the engine: their manifests, one pod started and stopped, many at once.

use std::path::Path;
use std::time::{Duration, Instant};

use wasmhook::engine::Engine;
use wasmhook::events::{reason, Record};
use wasmhook::manifest::{self, LoadOptions};

use super::{noop_path, peak_rss_mib, reset_peak_rss, Sample};

fn pod_yaml(n: usize, hooks: bool) -> String {
    named_pod_yaml("bench", n, hooks)
}

fn named_pod_yaml(name: &str, n: usize, hooks: bool) -> String {
    let noop = noop_path();
    let mut y = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 2\n  containers:\n",
    );
    for i in 0..n {
        y.push_str(&format!(
            "  - name: c{i}\n    image: busybox\n    command: [\"sleep\", \"1000\"]\n"
        ));
        if hooks {
            y.push_str(&format!(
                "    lifecycle:\n      postStart:\n        exec:\n          command: [\"{0}\"]\n      preStop:\n        exec:\n          command: [\"{0}\"]\n",
                noop.display()
            ));
        }
    }
    y
}

/// The durations hook reports carried, by hook.
#[derive(Default)]
pub(crate) struct HookDurations {
    pub(crate) post_start: Vec<Duration>,
    pub(crate) pre_stop: Vec<Duration>,
}

/// One pod of `n` containers started and stopped; the durations its hook reports carry are
/// appended to `hook_durations`.
pub(crate) async fn run_pod(
    engine: &Engine,
    n: usize,
    hooks: bool,
    hook_durations: &mut HookDurations,
) -> Sample {
    let yaml = pod_yaml(n, hooks);
    let pods = manifest::load_str(&yaml, Path::new("bench.yaml"), &LoadOptions::default())
        .unwrap_or_else(|e| panic!("bench manifest: {e}"));
    reset_peak_rss();
    let (recorder, mut rx) = wasmhook::events::Recorder::channel();
    let t0 = Instant::now();
    let handle = engine.start_pod(&pods[0], recorder);
    let (mut started, mut post_start) = (0, 0);
    while started < n || (hooks && post_start < n) {
        match rx
            .recv()
            .await
            .expect("pod ended before all containers started")
        {
            Record::Event(e) if e.reason == reason::STARTED => started += 1,
            Record::Event(e) if e.reason == reason::FAILED_POST_START_HOOK => {
                panic!("postStart failed: {}", e.message)
            }
            Record::Hook(h) if h.hook == "postStart" => {
                assert!(h.error.is_none(), "postStart hook failed: {:?}", h.error);
                hook_durations.post_start.push(h.duration);
                post_start += 1;
            }
            _ => {}
        }
    }
    let start = t0.elapsed();
    let t1 = Instant::now();
    handle.stop(Some(2));
    let status = handle.wait().await;
    let stop = t1.elapsed();
    let mut pre_stop = 0;
    while let Ok(r) = rx.try_recv() {
        if let Record::Hook(h) = r {
            if h.hook == "preStop" {
                assert!(h.error.is_none(), "preStop hook failed: {:?}", h.error);
                hook_durations.pre_stop.push(h.duration);
                pre_stop += 1;
            }
        }
    }
    if hooks {
        assert_eq!(pre_stop, n, "preStop hooks reported");
    }
    assert!(
        status.stopped_cleanly(),
        "pod did not stop cleanly (SIGKILL needed)"
    );
    Sample {
        start,
        stop,
        peak_mib: peak_rss_mib(),
    }
}

/// Containers per pod in the many-pods scenario.
pub(crate) const CONTAINERS_PER_POD: usize = 5;

/// `pods` pods of [`CONTAINERS_PER_POD`] containers with wasm postStart and preStop hooks,
/// started at once on `engine`, then stopped at once.
pub(crate) async fn run_pods(engine: &Engine, pods: usize) -> Sample {
    let n = CONTAINERS_PER_POD;
    let manifests: Vec<_> = (0..pods)
        .map(|i| {
            let yaml = named_pod_yaml(&format!("bench-{i}"), n, true);
            manifest::load_str(&yaml, Path::new("bench.yaml"), &LoadOptions::default())
                .unwrap_or_else(|e| panic!("bench manifest: {e}"))
                .remove(0)
        })
        .collect();
    reset_peak_rss();
    let t0 = Instant::now();
    let mut running = Vec::new();
    for pod in &manifests {
        let (recorder, mut rx) = wasmhook::events::Recorder::channel();
        let handle = engine.start_pod(pod, recorder);
        let up = tokio::spawn(async move {
            let (mut started, mut post_start) = (0, 0);
            while started < n || post_start < n {
                match rx.recv().await.expect("pod ended before it was running") {
                    Record::Event(e) if e.reason == reason::STARTED => started += 1,
                    Record::Hook(h) if h.hook == "postStart" => {
                        assert!(h.error.is_none(), "postStart hook failed: {:?}", h.error);
                        post_start += 1;
                    }
                    _ => {}
                }
            }
            rx
        });
        running.push((handle, up));
    }
    let mut receivers = Vec::new();
    for (_, up) in &mut running {
        receivers.push(up.await.expect("pod watcher"));
    }
    let start = t0.elapsed();
    let t1 = Instant::now();
    for (handle, _) in &running {
        handle.stop(Some(2));
    }
    for (handle, _) in running {
        assert!(
            handle.wait().await.stopped_cleanly(),
            "a pod needed SIGKILL"
        );
    }
    let stop = t1.elapsed();
    drop(receivers);
    Sample {
        start,
        stop,
        peak_mib: peak_rss_mib(),
    }
}
