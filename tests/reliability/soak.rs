//! Soak: many pods with hooks on one engine, resources back to baseline. Run by
//! `scripts/soak.sh`, or `SOAK_SECONDS=120 cargo test --release --test reliability soak::soak --
//! --ignored --nocapture`.

use super::*;

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
