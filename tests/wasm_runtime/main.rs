//! The wasm hook runtime with real modules: WAT fixtures under `tests/fixtures/wat/` and the
//! example hooks under `examples/hooks/bin/`.

#[path = "../common/mod.rs"]
mod common;

mod calls;
mod concurrency;
mod example_hooks;
mod limits;
mod loading;
mod network;

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use wasmhook::events::PodRef;
use wasmhook::handlers::HookKind;
use wasmhook::hook::HookNetwork;
use wasmhook::wasm::{
    Allocator, ExecStatus, HookIdentity, HookModule, HookRuntime, Invocation, Limits, LoadError,
    ModuleKind, Preopen, RuntimeConfig,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/wat")
        .join(name)
}

fn runtime_with(cache: Option<&Path>, allow_precompiled: bool) -> HookRuntime {
    HookRuntime::new(RuntimeConfig {
        allocator: Allocator::Pooling { max_instances: 256 },
        cache_dir: cache.map(Path::to_owned),
        allow_precompiled,
        default_limits: Limits::default(),
    })
    .expect("runtime")
}

fn runtime() -> HookRuntime {
    runtime_with(None, false)
}

fn load(rt: &HookRuntime, name: &str) -> HookModule {
    rt.load_file(&fixture(name)).expect("fixture loads")
}

fn inv(args: &[&str]) -> Invocation {
    Invocation {
        args: args.iter().map(|s| s.to_string()).collect(),
        limits: Limits {
            timeout: Duration::from_secs(20),
            ..Limits::default()
        },
        ..Invocation::default()
    }
}

/// After a hostile hook, the runtime still runs a well-behaved one.
async fn still_serving(rt: &HookRuntime) {
    let out = rt.run(&load(rt, "hello.wat"), inv(&["hello.wasm"])).await;
    assert_eq!(out.status, ExecStatus::Success);
    assert_eq!(out.output.combined, b"out 1\nerr\nout 2\n");
}

fn preopen(dir: &Path, read_only: bool) -> Preopen {
    Preopen {
        host: dir.to_owned(),
        guest: "/data".into(),
        read_only,
        volume: Some("data".into()),
    }
}
