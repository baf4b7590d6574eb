//! Hooks per second on one `HookRuntime` at several concurrencies, and the memory of the
//! runtime idle and per running hook. Plain `main`; prints the `BENCH|`/`VALUE|` lines of
//! benches/common/mod.rs (always, this bench has no interactive form).
//!
//! - throughput: `C` tokio tasks on a 2-worker multi-thread runtime share one pooling
//!   `HookRuntime` and run `noop.wat` until `TOTAL` calls are done; hooks/s = TOTAL / wall
//!   time, and each call's latency (queueing included) gives median/p99. Variants: default
//!   limits (the runtime always arms an epoch deadline; no fuel), fuel 10M (+ epoch), and
//!   "neither": bare wasmtime (pooling, `InstancePre`, no epoch interruption, no fuel) on the
//!   same tokio runtime and concurrency, which is the baseline of each row. The variants run
//!   in 5 interleaved rounds; hooks/s is each one's median round. Then a real hook at C=64,
//!   `examples/hooks/bin/log-env.wasm` (Rust with std, prints its environment), through
//!   wasmhook and bare wasmtime alike: what a call dirties in its memory is what the pool
//!   resets between calls.
//! - memory: VmRSS before any runtime, after `HookRuntime::new` with a pool of 1000 instances
//!   and two modules loaded (idle), and with K hooks blocked in `poll_oneoff` (`block.wat`,
//!   a 1-hour sleep); per hook = (RSS − idle) / K.
//!
//! Run: `cargo bench --bench throughput` (`WASMHOOK_BENCH_QUICK=1`: a few calls only).

#[path = "common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use wasmhook::wasm::{Allocator, HookModule, HookRuntime, Invocation, Limits, RuntimeConfig};

use common::bare::Bare;

const POOL: u32 = 1000;
/// Interleaved rounds per concurrency (odd: the median is one of them).
const ROUNDS: usize = 5;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/wat")
        .join(name)
}

fn rss_mib() -> f64 {
    common::proc_status_kib("VmRSS:").unwrap_or(0) as f64 / 1024.0
}

fn hook_runtime() -> HookRuntime {
    HookRuntime::new(RuntimeConfig {
        allocator: Allocator::Pooling {
            max_instances: POOL,
        },
        cache_dir: None,
        allow_precompiled: false,
        default_limits: Limits::default(),
    })
    .expect("hook runtime")
}

/// The Rust hook of the real-hook rows, and the environment it needs to run.
const RUST_HOOK: &str = "examples/hooks/bin/log-env.wasm";
const RUST_HOOK_ENV: [(&str, &str); 1] = [("WASMHOOK_HOOK", "postStart")];

#[derive(Clone)]
enum Target {
    /// `HookRuntime::run` of the module with this invocation (cloned per call).
    Runtime(HookRuntime, HookModule, Box<Invocation>),
    Bare(Arc<Bare>),
}

impl Target {
    async fn call(&self) {
        match self {
            Target::Runtime(rt, module, inv) => {
                let o = rt.run(module, (**inv).clone()).await;
                assert!(o.is_success(), "{:?}", o.status);
            }
            Target::Bare(b) => b.call().await.expect("bare wasmtime call"),
        }
    }
}

/// `total` calls split over `conc` tasks; (wall time, per-call latencies).
fn drive(tokio: &Runtime, target: &Target, conc: usize, total: usize) -> (Duration, Vec<Duration>) {
    tokio.block_on(async {
        // Warm-up: instantiate every path once per task.
        let warm: Vec<_> = (0..conc)
            .map(|_| {
                let t = target.clone();
                tokio::spawn(async move { t.call().await })
            })
            .collect();
        for w in warm {
            w.await.unwrap();
        }
        let per_task = total.div_ceil(conc);
        let t0 = Instant::now();
        let tasks: Vec<_> = (0..conc)
            .map(|_| {
                let t = target.clone();
                tokio::spawn(async move {
                    let mut d = Vec::with_capacity(per_task);
                    for _ in 0..per_task {
                        let s = Instant::now();
                        t.call().await;
                        d.push(s.elapsed());
                    }
                    d
                })
            })
            .collect();
        let mut all = Vec::with_capacity(per_task * conc);
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        (t0.elapsed(), all)
    })
}

fn main() {
    let rss_start = rss_mib();
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let rss_tokio = rss_mib();
    let rt = hook_runtime();
    let noop = rt.load_file(&fixture("noop.wat")).expect("noop");
    let block = rt.load_file(&fixture("block.wat")).expect("block");
    // One call of each so lazily built state (InstancePre, fd tables) exists before "idle".
    tokio.block_on(async {
        let inv = Invocation {
            args: vec!["noop.wat".into()],
            ..Default::default()
        };
        assert!(rt.run(&noop, inv).await.is_success());
    });

    // Memory first, before the throughput runs grow the heap.
    memory(&tokio, &rt, &block, rss_start, rss_tokio);

    let noop_inv = |limits: Limits| {
        Box::new(Invocation {
            args: vec!["noop.wat".into()],
            limits,
            ..Default::default()
        })
    };
    let bare = Target::Bare(Arc::new(Bare::new(&fixture("noop.wat"), POOL, &[])));
    let epoch = Target::Runtime(rt.clone(), noop.clone(), noop_inv(Limits::default()));
    let fuel = Target::Runtime(
        rt.clone(),
        noop.clone(),
        noop_inv(Limits {
            fuel: Some(10_000_000),
            ..Limits::default()
        }),
    );
    let total = common::samples(100_000);
    for conc in [1usize, 8, 64] {
        let base = format!("c={conc:>2}, neither: bare wasmtime (no epoch, no fuel)");
        let variants = [
            (base.clone(), &bare, ""),
            (
                format!("c={conc:>2}, wasmhook, epoch deadline only"),
                &epoch,
                base.as_str(),
            ),
            (
                format!("c={conc:>2}, wasmhook, fuel 10M + epoch"),
                &fuel,
                base.as_str(),
            ),
        ];
        interleaved(&tokio, &variants, conc, total);
    }

    // A real hook: Rust with std, which prints its environment. Its memory is 17 pages, and
    // what a call dirties (stack, data, heap) is what the pool resets.
    let rust_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(RUST_HOOK);
    let rust = rt.load_file(&rust_path).expect("Rust hook");
    let rust_bare = Target::Bare(Arc::new(Bare::new(&rust_path, POOL, &RUST_HOOK_ENV)));
    let rust_epoch = Target::Runtime(
        rt.clone(),
        rust,
        Box::new(Invocation {
            args: vec!["log-env.wasm".into()],
            env: RUST_HOOK_ENV
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }),
    );
    let base = "c=64, log-env.wasm (Rust), bare wasmtime".to_owned();
    let variants = [
        (base.clone(), &rust_bare, ""),
        (
            "c=64, log-env.wasm (Rust), wasmhook, epoch deadline only".to_owned(),
            &rust_epoch,
            base.as_str(),
        ),
    ];
    interleaved(&tokio, &variants, 64, common::samples(50_000));
}

/// Drive each `(name, target, baseline)` at `conc` for `total` calls, in [`ROUNDS`] rounds
/// that interleave the variants (a, b, c, a, ...): this shared machine's speed drifts over
/// seconds, and a variant measured in one block after another would carry that drift into
/// its ratio. hooks/s is each variant's median round; the latencies are pooled.
fn interleaved(tokio: &Runtime, variants: &[(String, &Target, &str)], conc: usize, total: usize) {
    let mut rates = vec![Vec::new(); variants.len()];
    let mut lat = vec![Vec::new(); variants.len()];
    for _ in 0..ROUNDS {
        for (i, (_, target, _)) in variants.iter().enumerate() {
            let (wall, l) = drive(tokio, target, conc, total);
            rates[i].push(l.len() as f64 / wall.as_secs_f64());
            lat[i].extend(l);
        }
    }
    for (((name, _, baseline), mut rates), lat) in variants.iter().zip(rates).zip(lat) {
        rates.sort_by(f64::total_cmp);
        common::emit(
            "throughput",
            name,
            common::stats(&lat),
            baseline,
            "per-call latency, queueing included",
        );
        common::emit_value(
            "throughput",
            name,
            rates[ROUNDS / 2],
            "hooks/s",
            baseline,
            &format!(
                "median of {ROUNDS} interleaved runs of {} calls ({:.0}–{:.0}), 2 tokio workers",
                lat.len() / ROUNDS,
                rates[0],
                rates[ROUNDS - 1]
            ),
        );
    }
}

fn memory(tokio: &Runtime, rt: &HookRuntime, block: &HookModule, rss_start: f64, rss_tokio: f64) {
    const G: &str = "memory";
    std::thread::sleep(Duration::from_millis(100));
    let idle = rss_mib();
    common::emit_value(
        G,
        "process before any wasm runtime (tokio up)",
        rss_tokio,
        "MiB",
        "",
        &format!("{rss_start:.1} MiB before tokio"),
    );
    common::emit_value(
        G,
        "HookRuntime idle (pool of 1000, 2 modules loaded)",
        idle,
        "MiB",
        "",
        &format!("+{:.1} MiB over the process before it", idle - rss_tokio),
    );
    for k in [64usize, 512] {
        let k = if common::quick() { k.min(8) } else { k };
        let before = rss_mib();
        let tasks: Vec<_> = (0..k)
            .map(|_| {
                let rt = rt.clone();
                let block = block.clone();
                tokio.spawn(async move {
                    let inv = Invocation {
                        args: vec!["block.wat".into()],
                        limits: Limits {
                            timeout: Duration::from_secs(3600),
                            ..Limits::default()
                        },
                        ..Default::default()
                    };
                    rt.run(&block, inv).await
                })
            })
            .collect();
        // Every hook is parked in poll_oneoff well within this (a call takes microseconds).
        std::thread::sleep(Duration::from_millis(if k > 64 { 1500 } else { 500 }));
        assert!(
            tasks.iter().all(|t| !t.is_finished()),
            "a blocked hook ended"
        );
        let busy = rss_mib();
        common::emit_value(
            G,
            &format!("{k} hooks blocked in poll_oneoff"),
            busy,
            "MiB",
            "",
            &format!(
                "(RSS − idle) / {k} = {:.1} KiB per running hook",
                (busy - before) * 1024.0 / k as f64
            ),
        );
        common::emit_value(
            G,
            &format!("per running hook ({k} at once)"),
            (busy - before) * 1024.0 / k as f64,
            "KiB",
            "",
            "",
        );
        for t in &tasks {
            t.abort();
        }
        tokio.block_on(async {
            for t in tasks {
                let _ = t.await;
            }
        });
        std::thread::sleep(Duration::from_millis(200));
    }
}
