//! Cost of one exec hook call, side by side in one run with what it replaces and what it is
//! built on:
//!
//! - `wasmhook_runtime_*`: a hook through the public API (`HookRuntime` with the pooling
//!   allocator, module loaded once, one `rt.run(..)` per iteration on a current-thread tokio
//!   runtime created once). `_noop` does nothing, `_hello` writes three short lines (two to
//!   stdout, one to stderr, all captured), `_noop_fuel` runs the noop hook with a 10M fuel budget
//!   (the fuel engine and its compiled module are created before timing).
//! - `bare_wasmtime_pooled_instance_pre`: the floor: wasmtime 48 used directly with the same
//!   pooling limits, `Linker` + `wasmtime_wasi::p1::add_to_linker_async` and the `InstancePre`
//!   built once, then per iteration a fresh `Store` with a `WasiP1Ctx`, `instantiate_async` and
//!   `_start` via `call_async`; `_hello`: the same with `hello.wat`, output to memory pipes.
//!   That is the work `HookRuntime::run` does, minus its bookkeeping (timeout, cancellation,
//!   epoch deadline, store limiter, output capture, outcome).
//! - `spawn_bin_true`, `spawn_sh_c_true`: what a native exec hook costs at the very least
//!   (fork/exec + wait, without any container runtime in between).
//!
//! Run: `cargo bench --bench hooks`. Compare ratios within one run; see benches/README.md.

use std::path::PathBuf;
use std::process::Command;

use divan::Bencher;
use tokio::runtime::Runtime;
use wasmhook::wasm::{Allocator, HookModule, HookRuntime, Invocation, Limits, RuntimeConfig};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, InstancePre, Linker, Module,
    PoolingAllocationConfig, Store,
};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::WasiCtxBuilder;

/// Instances the pools hold; far more than one iteration needs.
const MAX_INSTANCES: u32 = 16;

fn main() {
    divan::main();
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/wat")
        .join(name)
}

fn tokio_rt() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn hook_runtime() -> HookRuntime {
    HookRuntime::new(RuntimeConfig {
        allocator: Allocator::Pooling {
            max_instances: MAX_INSTANCES,
        },
        cache_dir: None,
        allow_precompiled: false,
        default_limits: Limits::default(),
    })
    .expect("hook runtime")
}

fn invocation(argv0: &str, limits: Limits) -> Invocation {
    Invocation {
        args: vec![argv0.to_string()],
        limits,
        ..Default::default()
    }
}

/// Time `rt.run(module, inv)` after one checked warm-up call (which also builds the fuel
/// engine's `InstancePre` when `limits` asks for fuel).
fn bench_runtime(bencher: Bencher, wat: &str, limits: Limits) {
    let tokio = tokio_rt();
    let rt = hook_runtime();
    let module: HookModule = rt.load_file(&fixture(wat)).expect("load fixture");
    let inv = invocation(wat, limits);
    let first = tokio.block_on(rt.run(&module, inv.clone()));
    assert!(first.is_success(), "{wat}: {:?}", first.status);
    bencher
        .with_inputs(|| inv.clone())
        .bench_local_values(|inv| tokio.block_on(rt.run(&module, inv)));
}

#[divan::bench(sample_count = 2000)]
fn wasmhook_runtime_noop(bencher: Bencher) {
    bench_runtime(bencher, "noop.wat", Limits::default());
}

#[divan::bench(sample_count = 2000)]
fn wasmhook_runtime_hello(bencher: Bencher) {
    bench_runtime(bencher, "hello.wat", Limits::default());
}

#[divan::bench(sample_count = 2000)]
fn wasmhook_runtime_noop_fuel(bencher: Bencher) {
    bench_runtime(
        bencher,
        "noop.wat",
        Limits {
            fuel: Some(10_000_000),
            ..Limits::default()
        },
    );
}

/// The pooling limits `HookRuntime` uses for core modules, so both sides reserve alike.
fn bare_engine() -> Engine {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_core_instances(MAX_INSTANCES * 4)
        .total_memories(MAX_INSTANCES * 4)
        .total_tables(MAX_INSTANCES * 4)
        .total_stacks(MAX_INSTANCES)
        .max_memory_size(1 << 30)
        .table_elements(20_000);
    let mut c = Config::new();
    c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&c).expect("engine")
}

/// Bare wasmtime: everything built once, per call a fresh `Store` + `WasiP1Ctx` (stdout and
/// stderr to in-memory pipes, like our output capture), `instantiate_async`, `_start`.
fn bench_bare(bencher: Bencher, wat: &str) {
    let tokio = tokio_rt();
    let engine = bare_engine();
    let wat_text = std::fs::read(fixture(wat)).unwrap();
    let module = Module::new(&engine, &wat_text).expect("compile");
    let mut linker: Linker<WasiP1Ctx> = Linker::new(&engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s| s).unwrap();
    let pre: InstancePre<WasiP1Ctx> = linker.instantiate_pre(&module).unwrap();
    let call = || async {
        let wasi = WasiCtxBuilder::new()
            .args(&[wat])
            .stdout(MemoryOutputPipe::new(1 << 20))
            .stderr(MemoryOutputPipe::new(1 << 20))
            .build_p1();
        let mut store = Store::new(&engine, wasi);
        let instance = pre.instantiate_async(&mut store).await?;
        let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
        start.call_async(&mut store, ()).await
    };
    tokio.block_on(call()).expect("hook runs");
    bencher.bench_local(|| tokio.block_on(call()));
}

#[divan::bench(sample_count = 2000)]
fn bare_wasmtime_pooled_instance_pre(bencher: Bencher) {
    bench_bare(bencher, "noop.wat");
}

#[divan::bench(sample_count = 2000)]
fn bare_wasmtime_pooled_instance_pre_hello(bencher: Bencher) {
    bench_bare(bencher, "hello.wat");
}

#[divan::bench(sample_count = 300)]
fn spawn_bin_true(bencher: Bencher) {
    bencher.bench_local(|| {
        let status = Command::new("/bin/true").status().unwrap();
        assert!(status.success());
    });
}

#[divan::bench(sample_count = 300)]
fn spawn_sh_c_true(bencher: Bencher) {
    bencher.bench_local(|| {
        let status = Command::new("/bin/sh")
            .args(["-c", "true"])
            .status()
            .unwrap();
        assert!(status.success());
    });
}
