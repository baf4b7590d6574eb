//! Shared by the bench binaries: sample statistics and the machine-readable output that
//! `scripts/bench.sh` turns into BENCHMARKS.md.
//!
//! With `WASMHOOK_BENCH_FORMAT=lines` a bench binary prints, instead of its interactive output,
//! one line per measurement:
//!
//! ```text
//! BENCH|group|name|median_ns|p99_ns|baseline name (or empty)|note
//! VALUE|group|name|value|unit|baseline name (or empty)|note
//! ```
//!
//! `baseline` names another row of the same group; the ratio is this row's median (value)
//! divided by the baseline's. `WASMHOOK_BENCH_QUICK=1` asks for tiny sample counts (CI: the
//! benches must keep compiling and running, the numbers mean nothing).
#![allow(dead_code)]

pub mod bare;

use std::time::{Duration, Instant};

/// `WASMHOOK_BENCH_FORMAT=lines`.
pub fn lines_mode() -> bool {
    std::env::var("WASMHOOK_BENCH_FORMAT").is_ok_and(|v| v == "lines")
}

/// `WASMHOOK_BENCH_QUICK=1`.
pub fn quick() -> bool {
    std::env::var("WASMHOOK_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// `full` samples, or a handful in quick mode.
pub fn samples(full: usize) -> usize {
    if quick() {
        full.clamp(1, 5)
    } else {
        full
    }
}

/// The sizes of a scale bench: `full`, or `quick` in quick mode.
pub fn sizes(full: &[usize], quick_sizes: &[usize]) -> Vec<usize> {
    if quick() {
        quick_sizes.to_vec()
    } else {
        full.to_vec()
    }
}

/// Median and 99th percentile (nearest rank) of per-iteration durations.
#[derive(Clone, Copy, Debug)]
pub struct Stats {
    pub median: Duration,
    pub p99: Duration,
    pub n: usize,
}

pub fn stats(samples: &[Duration]) -> Stats {
    assert!(!samples.is_empty(), "no samples");
    let mut v = samples.to_vec();
    v.sort_unstable();
    let rank = |q: f64| {
        let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        v[i - 1]
    };
    Stats {
        median: rank(0.5),
        p99: rank(0.99),
        n: v.len(),
    }
}

/// Time `n` calls of `f` one by one, after `warmup` untimed calls.
pub fn sample(n: usize, warmup: usize, mut f: impl FnMut()) -> Stats {
    for _ in 0..warmup {
        f();
    }
    let mut d = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f();
        d.push(t.elapsed());
    }
    stats(&d)
}

fn clean(s: &str) -> String {
    s.replace(['|', '\n'], " ")
}

/// One `BENCH|...` line.
pub fn emit(group: &str, name: &str, s: Stats, baseline: &str, note: &str) {
    println!(
        "BENCH|{}|{}|{}|{}|{}|{} (n = {})",
        clean(group),
        clean(name),
        s.median.as_nanos(),
        s.p99.as_nanos(),
        clean(baseline),
        clean(note),
        s.n
    );
}

/// One `VALUE|...` line.
pub fn emit_value(group: &str, name: &str, value: f64, unit: &str, baseline: &str, note: &str) {
    println!(
        "VALUE|{}|{}|{value}|{}|{}|{}",
        clean(group),
        clean(name),
        clean(unit),
        clean(baseline),
        clean(note)
    );
}

/// A row that could not be measured, with the reason.
pub fn emit_skip(group: &str, name: &str, why: &str) {
    println!("SKIP|{}|{}|{}", clean(group), clean(name), clean(why));
}

/// A field of /proc/self/status in KiB (e.g. `VmRSS:`).
pub fn proc_status_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
