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
//! - `runc_exec_bin_true` (lines mode only, root + `runc` + `/bin/busybox`): `RuncBackend::exec`
//!   of `/bin/true` into a running busybox container, the kubelet's exec-hook path.
//!
//! Run: `cargo bench --bench hooks`. Compare ratios within one run; see benches/README.md.
//! `WASMHOOK_BENCH_FORMAT=lines` prints median/p99 lines for `scripts/bench.sh` instead
//! (benches/common/mod.rs).

use std::path::PathBuf;
use std::process::Command;

use divan::Bencher;
use tokio::runtime::Runtime;
use wasmhook::wasm::{Allocator, HookModule, HookRuntime, Invocation, Limits, RuntimeConfig};

use common::bare::Bare;

/// Instances the pools hold; far more than one iteration needs.
const MAX_INSTANCES: u32 = 16;

#[path = "common/mod.rs"]
mod common;

fn main() {
    if common::lines_mode() {
        lines();
    } else {
        divan::main();
    }
}

/// The same comparisons with our own sampling, for median and p99 (divan has no p99).
fn lines() {
    const G: &str = "latency";
    const WASM: &str = "wasmhook HookRuntime::run noop";
    const BARE: &str = "bare wasmtime, pooling + InstancePre, noop";
    const BARE_HELLO: &str = "bare wasmtime, pooling + InstancePre, hello";
    let n_wasm = common::samples(10_000);
    let n_spawn = common::samples(500);

    let bare = BareCase::new("noop.wat");
    let s = common::sample(n_wasm, 100, || bare.run());
    common::emit(G, BARE, s, "", "floor: wasmtime 48 used directly");
    let case = RuntimeCase::new("noop.wat", Limits::default());
    let s = common::sample(n_wasm, 100, || case.run());
    common::emit(G, WASM, s, BARE, "epoch deadline + 30 s timeout");
    let fuel = RuntimeCase::new(
        "noop.wat",
        Limits {
            fuel: Some(10_000_000),
            ..Limits::default()
        },
    );
    let s = common::sample(n_wasm, 100, || fuel.run());
    common::emit(G, "wasmhook HookRuntime::run noop, fuel 10M", s, BARE, "");
    let bare_hello = BareCase::new("hello.wat");
    let s = common::sample(n_wasm, 100, || bare_hello.run());
    common::emit(G, BARE_HELLO, s, "", "3 fd_writes to memory pipes");
    let hello = RuntimeCase::new("hello.wat", Limits::default());
    let s = common::sample(n_wasm, 100, || hello.run());
    common::emit(
        G,
        "wasmhook HookRuntime::run hello",
        s,
        BARE_HELLO,
        "output captured",
    );

    let s = common::sample(n_spawn, 5, spawn_true);
    common::emit(
        G,
        "spawn + wait /bin/true",
        s,
        WASM,
        "std::process::Command",
    );
    let s = common::sample(n_spawn, 5, spawn_sh);
    common::emit(
        G,
        "spawn + wait sh -c true",
        s,
        WASM,
        "std::process::Command",
    );
    match runc::Exec::new() {
        Ok(exec) => {
            let s = common::sample(common::samples(150), 3, || exec.run());
            common::emit(
                G,
                "runc exec /bin/true (running container)",
                s,
                WASM,
                "RuncBackend::exec, busybox container",
            );
        }
        Err(why) => common::emit_skip(
            G,
            "runc exec /bin/true (running container)",
            &format!("not measured: runc not available ({why})"),
        ),
    }
}

/// `RuncBackend::exec` into one running busybox container.
mod runc {
    use std::path::Path;
    use std::time::Duration;

    use tokio::runtime::Runtime;
    use wasmhook::backend::runc::{RuncBackend, RuncBackendConfig};
    use wasmhook::backend::{Backend, ContainerId, ContainerSpec, Sandbox, SandboxSpec};
    use wasmhook::events::PodRef;

    pub struct Exec {
        tokio: Runtime,
        backend: RuncBackend,
        sandbox: Sandbox,
        id: ContainerId,
        argv: Vec<String>,
        _dirs: (tempfile::TempDir, tempfile::TempDir),
    }

    impl Exec {
        pub fn new() -> Result<Exec, String> {
            wasmhook::backend::runc::available(None)?;
            if !Path::new("/bin/busybox").exists() {
                return Err("/bin/busybox missing (apt-get install busybox-static)".into());
            }
            let images = tempfile::tempdir().map_err(|e| e.to_string())?;
            let state = tempfile::tempdir().map_err(|e| e.to_string())?;
            let out = std::process::Command::new("bash")
                .arg(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/scripts/make-test-image.sh"
                ))
                .arg(images.path())
                .output()
                .map_err(|e| e.to_string())?;
            if !out.status.success() {
                return Err(format!(
                    "make-test-image.sh: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            let backend = RuncBackend::new(RuncBackendConfig {
                images_dir: Some(images.path().to_path_buf()),
                state_dir: Some(state.path().to_path_buf()),
                runc: None,
                logs: None,
                ..RuncBackendConfig::default()
            });
            let tokio = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            let (sandbox, id) = tokio.block_on(async {
                let sandbox = backend
                    .create_sandbox(&SandboxSpec {
                        pod: PodRef {
                            name: "bench-runc".into(),
                            namespace: "default".into(),
                            uid: String::new(),
                        },
                        volumes: Vec::new(),
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                let spec = ContainerSpec {
                    name: "app".into(),
                    image: Some("busybox".into()),
                    argv: vec!["sleep".into(), "1000".into()],
                    ..Default::default()
                };
                let id = backend
                    .create_container(&sandbox, &spec)
                    .await
                    .map_err(|e| e.to_string())?;
                backend
                    .start_container(&id)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>((sandbox, id))
            })?;
            Ok(Exec {
                tokio,
                backend,
                sandbox,
                id,
                argv: vec!["/bin/true".into()],
                _dirs: (images, state),
            })
        }

        pub fn run(&self) {
            let out = self
                .tokio
                .block_on(
                    self.backend
                        .exec(&self.id, &self.argv, Duration::from_secs(10)),
                )
                .expect("runc exec");
            assert_eq!(out.exit_code, 0);
        }
    }

    impl Drop for Exec {
        fn drop(&mut self) {
            let _ = self
                .tokio
                .block_on(self.backend.remove_sandbox(&self.sandbox));
        }
    }
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

/// A `HookRuntime` with one module loaded, after one checked warm-up call (which also builds
/// the fuel engine's `InstancePre` when `limits` asks for fuel).
struct RuntimeCase {
    tokio: Runtime,
    rt: HookRuntime,
    module: HookModule,
    inv: Invocation,
}

impl RuntimeCase {
    fn new(wat: &str, limits: Limits) -> Self {
        let tokio = tokio_rt();
        let rt = hook_runtime();
        let module: HookModule = rt.load_file(&fixture(wat)).expect("load fixture");
        let inv = invocation(wat, limits);
        let first = tokio.block_on(rt.run(&module, inv.clone()));
        assert!(first.is_success(), "{wat}: {:?}", first.status);
        RuntimeCase {
            tokio,
            rt,
            module,
            inv,
        }
    }

    /// One call, the `Invocation` clone included (lines mode).
    fn run(&self) {
        let o = self
            .tokio
            .block_on(self.rt.run(&self.module, self.inv.clone()));
        debug_assert!(o.is_success());
    }
}

/// Time `rt.run(module, inv)`.
fn bench_runtime(bencher: Bencher, wat: &str, limits: Limits) {
    let c = RuntimeCase::new(wat, limits);
    bencher
        .with_inputs(|| c.inv.clone())
        .bench_local_values(|inv| c.tokio.block_on(c.rt.run(&c.module, inv)));
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

/// Bare wasmtime ([`common::bare`]) on a current-thread tokio runtime of its own.
struct BareCase {
    tokio: Runtime,
    bare: Bare,
}

impl BareCase {
    fn new(wat: &str) -> Self {
        let case = BareCase {
            tokio: tokio_rt(),
            bare: Bare::new(&fixture(wat), MAX_INSTANCES, &[]),
        };
        case.tokio.block_on(case.bare.call()).expect("hook runs");
        case
    }

    fn run(&self) {
        let r = self.tokio.block_on(self.bare.call());
        debug_assert!(r.is_ok());
    }
}

fn bench_bare(bencher: Bencher, wat: &str) {
    let b = BareCase::new(wat);
    bencher.bench_local(|| b.run());
}

#[divan::bench(sample_count = 2000)]
fn bare_wasmtime_pooled_instance_pre(bencher: Bencher) {
    bench_bare(bencher, "noop.wat");
}

#[divan::bench(sample_count = 2000)]
fn bare_wasmtime_pooled_instance_pre_hello(bencher: Bencher) {
    bench_bare(bencher, "hello.wat");
}

fn spawn_true() {
    let status = Command::new("/bin/true").status().unwrap();
    assert!(status.success());
}

fn spawn_sh() {
    let status = Command::new("/bin/sh")
        .args(["-c", "true"])
        .status()
        .unwrap();
    assert!(status.success());
}

#[divan::bench(sample_count = 300)]
fn spawn_bin_true(bencher: Bencher) {
    bencher.bench_local(spawn_true);
}

#[divan::bench(sample_count = 300)]
fn spawn_sh_c_true(bencher: Bencher) {
    bencher.bench_local(spawn_sh);
}
