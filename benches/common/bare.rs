//! Bare wasmtime: the floor the wasm rows are compared with. wasmtime 48 used directly, with
//! the pool `HookRuntime` uses (`wasmhook::wasm::pooling_config`, so both sides reserve and
//! reset memory alike), `Linker` + `wasmtime_wasi::p1::add_to_linker_async` and the
//! `InstancePre` built once; per call a fresh `Store` with a `WasiP1Ctx` (stdout and stderr
//! to in-memory pipes, like our output capture), `instantiate_async` and `_start`. That is
//! the work `HookRuntime::run` does, minus its bookkeeping (timeout, cancellation, epoch
//! deadline, store limiter, output capture, outcome): no epoch interruption, no fuel.

use std::path::Path;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, InstancePre, Linker, Module, Store};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::WasiCtxBuilder;

pub struct Bare {
    engine: Engine,
    pre: InstancePre<WasiP1Ctx>,
    argv0: String,
    env: Vec<(String, String)>,
}

impl Bare {
    /// `module` (wasm or WAT) compiled on a pool of `max_instances`; each call gets `env`.
    pub fn new(module: &Path, max_instances: u32, env: &[(&str, &str)]) -> Self {
        let mut c = Config::new();
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(
            wasmhook::wasm::pooling_config(max_instances),
        ));
        let engine = Engine::new(&c).expect("engine");
        let bytes = std::fs::read(module).expect("read the module");
        let module_name = module.file_name().unwrap_or_default().to_string_lossy();
        let compiled = Module::new(&engine, bytes).expect("compile");
        let mut linker: Linker<WasiP1Ctx> = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s| s).expect("WASI imports");
        let pre = linker.instantiate_pre(&compiled).expect("InstancePre");
        Bare {
            engine,
            pre,
            argv0: module_name.into_owned(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// One call; `Err` when the hook traps or exits non-zero.
    pub async fn call(&self) -> wasmtime::Result<()> {
        let wasi = WasiCtxBuilder::new()
            .args(&[&self.argv0])
            .envs(&self.env)
            .stdout(MemoryOutputPipe::new(1 << 20))
            .stderr(MemoryOutputPipe::new(1 << 20))
            .build_p1();
        let mut store = Store::new(&self.engine, wasi);
        let instance = self.pre.instantiate_async(&mut store).await?;
        let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
        start.call_async(&mut store, ()).await
    }
}
