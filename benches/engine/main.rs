//! A whole pod through the engine, with and without wasm exec hooks, plus what the same number
//! of native exec hooks would cost at the least. Prints a markdown table.
//!
//! The pod has N containers (`sleep 1000`, default N = 200; set `WASMHOOK_BENCH_CONTAINERS`,
//! e.g. 1000). Scenarios, each run `WASMHOOK_BENCH_ROUNDS` times (default 3, median shown; the
//! two pods of a round in turns, which goes first alternating):
//!
//! - `pod, no hooks`: start (until N `Started` events) and stop (`stop(Some(2))` + `wait`).
//! - `pod, wasm postStart + preStop`: the same pod, every container with `noop.wat` as exec
//!   postStart and preStop hook (absolute path). Start waits for N `Started` events and N
//!   postStart hook reports. The difference to the row above is what the hooks add to the
//!   pod; each hook's own cost in the pod is the duration its report carries (median of all
//!   reports, against the bare calls below), which the difference of two whole pods is too
//!   noisy to resolve.
//! - `pods of 100 in the same rounds` (when N > 100; `WASMHOOK_BENCH_REFERENCE` sets the
//!   size): the two pods again at the reference size, each beside its pod of N, for the
//!   per-container cost at N against a small pod measured in the same minutes of the machine
//!   (the flatness goals). Odd rounds run the even rounds' order backwards.
//! - `2N x ProcessBackend::exec /bin/true`: the kubelet-style native exec path of our process
//!   backend, on one running `sleep` container, sequentially.
//! - `2N x spawn /bin/true`: `std::process::Command` directly, sequentially.
//! - `2N x HookRuntime::run noop`: the wasm hook calls alone, sequentially.
//!
//! With `WASMHOOK_BENCH_PODS=P` it runs the node-shaped scenario instead: P pods of 5
//! containers each (`sleep 1000`, `noop.wat` as postStart and preStop of every container),
//! all started at once on one engine; start = until every container of every pod is running
//! with its postStart reported, stop = all pods stopped; peak RSS as below.
//!
//! Peak RSS is VmHWM of this process, reset before each scenario through
//! `/proc/self/clear_refs` (when the kernel allows it; otherwise it is the running peak).
//!
//! Run: `cargo bench --bench engine` (or `WASMHOOK_BENCH_CONTAINERS=1000 cargo bench --bench engine`).
//! `WASMHOOK_BENCH_CALLS` caps the sequential-call rows (default 2N); with
//! `WASMHOOK_BENCH_FORMAT=lines` the results are also printed as `VALUE|scale|...` lines for
//! `scripts/bench.sh` (benches/common/mod.rs).
mod calls;
#[path = "../common/mod.rs"]
mod common;
mod pods;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use wasmhook::backend::ProcessBackend;
use wasmhook::engine::{Engine, EngineConfig};
use wasmhook::handlers::Handlers;
use wasmhook::wasm::{Allocator, HookRuntime, Limits, RuntimeConfig};

use calls::{backend_execs, bare_calls_after_start, spawns, wasm_calls, wasm_calls_after_start};
use common::bare::Bare;
use common::proc_status_kib;
use pods::{run_pod, run_pods, HookDurations, CONTAINERS_PER_POD};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn noop_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wat/noop.wat")
}

/// Reset VmHWM to the current RSS; false when the kernel refuses.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .map(|m| m.lines().count())
        .unwrap_or(0)
}

fn peak_rss_mib() -> f64 {
    proc_status_kib("VmHWM:").unwrap_or(0) as f64 / 1024.0
}

#[derive(Default, Clone, Copy)]
struct Sample {
    start: Duration,
    stop: Duration,
    peak_mib: f64,
}

fn median(mut v: Vec<Sample>) -> Sample {
    let mid = v.len() / 2;
    v.sort_by_key(|s| s.start);
    let start = v[mid].start;
    v.sort_by_key(|s| s.stop);
    let stop = v[mid].stop;
    v.sort_by(|a, b| a.peak_mib.total_cmp(&b.peak_mib));
    Sample {
        start,
        stop,
        peak_mib: v[mid].peak_mib,
    }
}

fn median_duration(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The pods of one round.
#[derive(Clone, Copy)]
enum PodKind {
    /// The pod of N containers, without or with hooks.
    Measured { hooks: bool },
    /// A pod of the reference size, for per-container cost at N against a small pod.
    Reference { hooks: bool, size: usize },
}

/// Per-container start and stop at `n` and at the reference size, in µs, by what they are.
fn flat_pairs(
    n: usize,
    plain: &Sample,
    hooked: &Sample,
    size: usize,
    ref_plain: &Sample,
    ref_hooked: &Sample,
) -> [(&'static str, f64, f64); 4] {
    let per = |d: Duration, count: usize| d.as_secs_f64() * 1e6 / count as f64;
    [
        (
            "start per container, no hooks",
            per(plain.start, n),
            per(ref_plain.start, size),
        ),
        (
            "start per container, wasm postStart + preStop",
            per(hooked.start, n),
            per(ref_hooked.start, size),
        ),
        (
            "stop per container, no hooks",
            per(plain.stop, n),
            per(ref_plain.stop, size),
        ),
        (
            "stop per container, wasm postStart + preStop",
            per(hooked.stop, n),
            per(ref_hooked.stop, size),
        ),
    ]
}

/// The many-pods scenario (`WASMHOOK_BENCH_PODS`): prints its rows and returns.
fn many_pods(tokio: &tokio::runtime::Runtime, engine: &Engine, pods: usize, rounds: usize) {
    let samples: Vec<Sample> = tokio.block_on(async {
        run_pods(engine, 1).await; // warm-up: compile noop.wat, start the spawner
        let mut v = Vec::new();
        for round in 0..rounds {
            eprintln!("round {}/{rounds} ({pods} pods)", round + 1);
            v.push(run_pods(engine, pods).await);
        }
        v
    });
    let s = median(samples);
    let per_pod = |d: Duration| ms(d) * 1e3 / pods as f64;
    println!(
        "\n{pods} pods x {CONTAINERS_PER_POD} containers, wasm postStart + preStop; median of {rounds} rounds\n"
    );
    println!("| scenario | total (ms) | per pod (µs) |");
    println!("|---|---:|---:|");
    println!(
        "| start, until all running | {:.1} | {:.0} |",
        ms(s.start),
        per_pod(s.start)
    );
    println!(
        "| stop, all at once | {:.1} | {:.0} |",
        ms(s.stop),
        per_pod(s.stop)
    );
    println!("| peak RSS (MiB) | {:.1} | |", s.peak_mib);
    if common::lines_mode() {
        let g = "pods";
        let name = format!("P={pods:>3} pods x {CONTAINERS_PER_POD}, start until all running");
        let note = format!("{:.0} µs per pod", per_pod(s.start));
        common::emit_value(g, &name, ms(s.start), "ms", "", &note);
        let name = format!("P={pods:>3} pods x {CONTAINERS_PER_POD}, stop all");
        let note = format!("{:.0} µs per pod", per_pod(s.stop));
        common::emit_value(g, &name, ms(s.stop), "ms", "", &note);
        let name = format!("P={pods:>3} pods x {CONTAINERS_PER_POD}, peak RSS");
        let note = format!("{:.1} KiB per pod", s.peak_mib * 1024.0 / pods as f64);
        common::emit_value(g, &name, s.peak_mib, "MiB", "", &note);
    }
}

fn main() {
    let n = env_usize("WASMHOOK_BENCH_CONTAINERS", 200).max(1);
    let rounds = env_usize("WASMHOOK_BENCH_ROUNDS", 3).max(1);
    let calls = env_usize("WASMHOOK_BENCH_CALLS", 2 * n).max(1);
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let pods = std::env::var("WASMHOOK_BENCH_PODS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    let rss_resettable = reset_peak_rss();
    // The native baselines once more before any wasm engine exists: process spawning gets
    // slower as this process's address space grows (see benches/README.md).
    let maps_before = mappings();
    let pre_calls = if pods.is_some() { 1 } else { calls };
    let execs_pre = tokio.block_on(backend_execs(pre_calls));
    let spawned_pre = spawns(pre_calls);

    // All preStop hooks start at once; calls beyond the pool queue for a slot, so the pool is
    // sized as `wasmhook run` sizes it (for concurrency, not for N).
    let pool = env_usize(
        "WASMHOOK_BENCH_POOL",
        wasmhook::wasm::DEFAULT_POOL_SIZE as usize,
    ) as u32;
    let rt = HookRuntime::new(RuntimeConfig {
        allocator: Allocator::Pooling {
            max_instances: pool,
        },
        cache_dir: None,
        allow_precompiled: false,
        default_limits: Limits::default(),
    })
    .expect("hook runtime");
    let engine = Engine::new(
        Arc::new(ProcessBackend::default()),
        Handlers::new(rt.clone()),
        EngineConfig::default(),
    );

    if let Some(pods) = pods {
        many_pods(&tokio, &engine, pods.max(1), rounds);
        return;
    }

    let mut plain = Vec::new();
    let mut hooked = Vec::new();
    let mut execs = Vec::new();
    let mut spawned = Vec::new();
    let mut wasm = Vec::new();
    let mut cold = Vec::new();
    let mut bare_cold = Vec::new();
    let bare = Bare::new(&noop_path(), pool, &[]);
    // Flatness is per-container cost at N against the same at the reference size. Pods of
    // both sizes run in the same rounds of this process, so the machine's drift between
    // separate runs (minutes apart, often more than the 1.3x being judged) stays out.
    let reference_size = env_usize("WASMHOOK_BENCH_REFERENCE", 100);
    let reference = (n > reference_size).then_some(reference_size);
    let mut ref_plain = Vec::new();
    let mut ref_hooked = Vec::new();
    // What each hook of the hooked pods took, as its report says: module lookup, the call's
    // environment and limits, the pool slot, the call and its output.
    let mut in_pod = HookDurations::default();
    tokio.block_on(async {
        // Warm-up: compile noop.wat into the runtime's memory cache, start the spawner.
        run_pod(&engine, 1, true, &mut HookDurations::default()).await;
        for round in 0..rounds {
            eprintln!("round {}/{rounds} (N = {n})", round + 1);
            // Odd rounds run the even rounds' order backwards (A B B A), so neither pod
            // always inherits the other's aftermath (exited children still being reaped, a
            // grown heap), and a drift of the machine over the rounds weighs on both alike.
            // The reference pods sit beside the pod of N they are compared with.
            let mut order = Vec::new();
            if let Some(r) = reference {
                order.push(PodKind::Reference {
                    hooks: false,
                    size: r,
                });
            }
            order.extend([
                PodKind::Measured { hooks: false },
                PodKind::Measured { hooks: true },
            ]);
            if let Some(r) = reference {
                order.push(PodKind::Reference {
                    hooks: true,
                    size: r,
                });
            }
            if round % 2 == 1 {
                order.reverse();
            }
            for kind in order {
                match kind {
                    PodKind::Measured { hooks: false } => {
                        plain.push(run_pod(&engine, n, false, &mut HookDurations::default()).await)
                    }
                    PodKind::Measured { hooks: true } => {
                        hooked.push(run_pod(&engine, n, true, &mut in_pod).await)
                    }
                    PodKind::Reference { hooks, size } => {
                        let s = run_pod(&engine, size, hooks, &mut HookDurations::default()).await;
                        if hooks {
                            &mut ref_hooked
                        } else {
                            &mut ref_plain
                        }
                        .push(s);
                    }
                }
            }
            execs.push(backend_execs(calls).await);
            spawned.push(spawns(calls));
            wasm.push(wasm_calls(&rt, calls).await);
            cold.push(wasm_calls_after_start(&rt, calls).await);
            bare_cold.push(bare_calls_after_start(&bare, calls).await);
        }
    });
    let (plain, hooked) = (median(plain), median(hooked));
    let references = reference.map(|size| (size, median(ref_plain), median(ref_hooked)));
    let (execs, spawned, wasm) = (median(execs), median(spawned), median(wasm));
    let cold_call_us = median_duration(cold).as_secs_f64() * 1e6;
    let bare_cold_us = median_duration(bare_cold).as_secs_f64() * 1e6;

    println!(
        "\nN = {n} containers, {calls} hook calls, pool of {pool} instances; median of {rounds} rounds; peak RSS {}\n",
        if rss_resettable {
            "reset before each scenario"
        } else {
            "is the running peak (clear_refs refused)"
        }
    );
    println!("| scenario | start (ms) | stop (ms) | peak RSS (MiB) |");
    println!("|---|---:|---:|---:|");
    let row = |name: &str, s: &Sample| {
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} |",
            ms(s.start),
            ms(s.stop),
            s.peak_mib
        );
    };
    row(&format!("pod, {n} containers, no hooks"), &plain);
    row(
        &format!("pod, {n} containers, wasm postStart + preStop (noop)"),
        &hooked,
    );
    println!(
        "| hook cost (difference) | {:+.1} ({:+.1} µs/hook) | {:+.1} ({:+.1} µs/hook) | {:+.1} |",
        ms(hooked.start) - ms(plain.start),
        (ms(hooked.start) - ms(plain.start)) * 1e3 / n as f64,
        ms(hooked.stop) - ms(plain.stop),
        (ms(hooked.stop) - ms(plain.stop)) * 1e3 / n as f64,
        hooked.peak_mib - plain.peak_mib
    );
    println!("\n| {calls} sequential calls | total (ms) | per call (µs) | peak RSS (MiB) |");
    println!("|---|---:|---:|---:|");
    let row2 = |name: &str, s: &Sample| {
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} |",
            ms(s.start),
            ms(s.start) * 1e3 / calls as f64,
            s.peak_mib
        );
    };
    row2("`HookRuntime::run` noop.wat", &wasm);
    row2(
        "`ProcessBackend::exec` /bin/true (running container)",
        &execs,
    );
    row2("`std::process::Command` /bin/true", &spawned);
    row2(
        "`ProcessBackend::exec` /bin/true, before the wasm runtime existed",
        &execs_pre,
    );
    row2(
        "`std::process::Command` /bin/true, before the wasm runtime existed",
        &spawned_pre,
    );
    println!(
        "\nmappings in /proc/self/maps: {maps_before} before the wasm runtime, {} at the end",
        mappings()
    );
    println!(
        "\nnative exec / wasm hook: {:.0}x (backend exec), {:.0}x (bare spawn)",
        ms(execs.start) / ms(wasm.start),
        ms(spawned.start) / ms(wasm.start)
    );
    if let Some((size, ref_plain, ref_hooked)) = &references {
        println!("\nper container, against pods of {size} in the same rounds (µs):");
        for (what, at_n, at_ref) in flat_pairs(n, &plain, &hooked, *size, ref_plain, ref_hooked) {
            println!("  {what}: {at_n:.0} vs {at_ref:.0} ({:.2}x)", at_n / at_ref);
        }
    }
    let bare_call_us = ms(wasm.start) * 1e3 / calls as f64;
    let reported = [
        ("postStart", in_pod.post_start),
        ("preStop", in_pod.pre_stop),
    ]
    .map(|(hook, mut d)| {
        d.sort();
        let us = |q: usize| d.get(d.len() * q / 100).map(|d| d.as_secs_f64() * 1e6);
        (hook, d.len(), us(50), us(99))
    });
    for (hook, count, median, _) in &reported {
        if let Some(median) = median {
            println!(
                "\na {hook} hook in the pod (its report's duration, median of {count}): {median:.1} µs; bare call {bare_call_us:.1} µs in a loop, {cold_call_us:.1} µs right after a process start (bare wasmtime: {bare_cold_us:.1} µs)"
            );
        }
    }
    if common::lines_mode() {
        let g = "scale";
        let plain_name = format!("N={n:>4}, pod start, no hooks");
        let note = format!("{:.0} µs per container", ms(plain.start) * 1e3 / n as f64);
        common::emit_value(g, &plain_name, ms(plain.start), "ms", "", &note);
        let note = format!(
            "{:.0} µs per container; +{:.0} µs per container for 2 hooks",
            ms(hooked.start) * 1e3 / n as f64,
            (ms(hooked.start) - ms(plain.start)) * 1e3 / n as f64
        );
        let hooked_name = format!("N={n:>4}, pod start, wasm postStart + preStop");
        common::emit_value(g, &hooked_name, ms(hooked.start), "ms", &plain_name, &note);
        let stop_name = format!("N={n:>4}, pod stop, no hooks");
        let note = format!("{:.0} µs per container", ms(plain.stop) * 1e3 / n as f64);
        common::emit_value(g, &stop_name, ms(plain.stop), "ms", "", &note);
        let note = format!("{:.0} µs per container", ms(hooked.stop) * 1e3 / n as f64);
        let name = format!("N={n:>4}, pod stop, wasm postStart + preStop");
        common::emit_value(g, &name, ms(hooked.stop), "ms", &stop_name, &note);
        let peak_name = format!("N={n:>4}, peak RSS, no hooks");
        common::emit_value(g, &peak_name, plain.peak_mib, "MiB", "", "");
        let name = format!("N={n:>4}, peak RSS, wasm postStart + preStop");
        let note = format!(
            "pool of {pool}; {:+.1} KiB per container",
            (hooked.peak_mib - plain.peak_mib) * 1024.0 / n as f64
        );
        common::emit_value(g, &name, hooked.peak_mib, "MiB", &peak_name, &note);
        if let Some((size, ref_plain, ref_hooked)) = &references {
            for (what, at_n, at_ref) in flat_pairs(n, &plain, &hooked, *size, ref_plain, ref_hooked)
            {
                let base = format!("N={n:>4}, {what}, {size}-container pods (same rounds)");
                common::emit_value("flat", &base, at_ref, "µs", "", "");
                let name = format!("N={n:>4}, {what}");
                common::emit_value("flat", &name, at_n, "µs", &base, "");
            }
        }
        let per = |s: &Sample| ms(s.start) * 1e3 / calls as f64;
        let wasm_name = format!("N={n:>4}, {calls} sequential HookRuntime::run noop");
        common::emit_value(g, &wasm_name, per(&wasm), "µs/call", "", "");
        let cold_name = format!("N={n:>4}, HookRuntime::run noop right after a process start");
        let note = format!("median of {calls}; the conditions of a postStart hook");
        common::emit_value(g, &cold_name, cold_call_us, "µs/call", &wasm_name, &note);
        let name = format!("N={n:>4}, bare wasmtime call of noop right after a process start");
        let note = format!("median of {calls}; wasmtime's own floor for a postStart hook");
        common::emit_value(g, &name, bare_cold_us, "µs/call", &cold_name, &note);
        for (hook, count, median, p99) in reported {
            if let (Some(median), Some(p99)) = (median, p99) {
                let name = format!("N={n:>4}, a {hook} hook in the pod (its report, median)");
                let note = format!("{count} reports; p99 {p99:.1} µs");
                // postStart runs as its container's process starts; preStop hooks run one
                // after another at termination, as the calls of a loop do.
                let base = if hook == "postStart" {
                    &cold_name
                } else {
                    &wasm_name
                };
                common::emit_value(g, &name, median, "µs/call", base, &note);
            }
        }
        let name = format!("N={n:>4}, {calls} sequential ProcessBackend::exec /bin/true");
        common::emit_value(g, &name, per(&execs), "µs/call", &wasm_name, "");
        let note = format!("{rounds} round(s), median");
        let name = format!("N={n:>4}, {calls} sequential spawn /bin/true");
        common::emit_value(g, &name, per(&spawned), "µs/call", &wasm_name, &note);
        let name = format!("N={n:>4}, mappings in /proc/self/maps at the end");
        let note = format!("{maps_before} before the wasm runtime (fork() copies every one)");
        common::emit_value(g, &name, mappings() as f64, "mappings", "", &note);
    }
}
