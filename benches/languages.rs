//! Typed hooks by authoring language: the same postStart (write a line into the first volume
//! of the typed context) as a Rust component (`examples/hooks/bin/typed.component.wasm`,
//! committed) and as Python and JavaScript components (`examples/hooks/build/`, built by
//! `scripts/build-script-hooks.sh`, not committed). For each: what compiling costs (cranelift,
//! what `wasmhook compile` and a pod's admission pay once per node), what loading the
//! precompiled artifact costs (a `.cwasm` from `wasmhook compile`; the disk cache holds the
//! same bytes: what a restarted engine pays), and a call on a pooling runtime as `wasmhook
//! run` makes it. Compiling happens in the compile row only (once when `--quick`). A
//! component that is not built is reported as not measured.
//!
//! Run: `WASMHOOK_BENCH_FORMAT=lines cargo bench --bench languages` (lines only).

use std::path::Path;
use std::time::{Duration, Instant};

use wasmhook::events::PodRef;
use wasmhook::hook::HookKind;
use wasmhook::wasm::{
    Allocator, HookIdentity, HookModule, HookRuntime, Invocation, Limits, Preopen, RuntimeConfig,
};

#[path = "common/mod.rs"]
mod common;

const G: &str = "languages";
const RUST: &str = "Rust";

/// Linear memory allowed to every row: the script runtimes need more than the 64 MiB default.
const MAX_MEMORY: u64 = 256 << 20;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let hooks = [
        (RUST, root.join("examples/hooks/bin/typed.component.wasm")),
        (
            "Python",
            root.join("examples/hooks/build/python-hook.component.wasm"),
        ),
        (
            "JavaScript",
            root.join("examples/hooks/build/js-hook.component.wasm"),
        ),
    ];
    let scratch = tempfile::tempdir().unwrap();
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (language, path) in &hooks {
        let Ok(bytes) = std::fs::read(path) else {
            for what in ["compile", "load precompiled", "postStart call"] {
                common::emit_skip(
                    G,
                    &format!("{language}: {what}"),
                    &format!(
                        "{} is not built (scripts/install-hook-tools.sh, then \
                         scripts/build-script-hooks.sh)",
                        path.display()
                    ),
                );
            }
            continue;
        };
        let baseline = |what: &str| match *language {
            RUST => String::new(),
            _ => format!("{RUST}: {what}"),
        };
        let size = format!("{:.1} MiB component", bytes.len() as f64 / 1048576.0);

        // Compiling: seconds for the script runtimes, so few samples (one when quick).
        let rt = runtime();
        let mut artifact = Vec::new();
        let samples = if common::quick() { 1 } else { 3 };
        let s = common::sample(samples, 0, || {
            artifact = rt.precompile(&bytes).expect("compiles");
        });
        common::emit(
            G,
            &format!("{language}: compile"),
            s,
            &baseline("compile"),
            &size,
        );

        // Loading the precompiled artifact into a fresh runtime (as after a restart).
        let cwasm = scratch.path().join(format!("{language}.cwasm"));
        std::fs::write(&cwasm, &artifact).unwrap();
        let s = common::sample(common::samples(20), 1, || {
            runtime().load_file(&cwasm).expect("loads");
        });
        let cwasm_size = artifact.len() as f64 / 1048576.0;
        common::emit(
            G,
            &format!("{language}: load precompiled"),
            s,
            &baseline("load precompiled"),
            &format!("fresh runtime, {cwasm_size:.1} MiB .cwasm"),
        );

        // One postStart call, fresh instance, on a pooling runtime.
        let rt = runtime();
        let module = rt.load_file(&cwasm).expect("loads");
        let volume = scratch.path().join(format!("volume-{language}"));
        std::fs::create_dir_all(&volume).unwrap();
        let inv = invocation(&volume);
        let first = Instant::now();
        call(&tokio, &rt, &module, &inv);
        let first = first.elapsed();
        let s = common::sample(common::samples(200), 5, || call(&tokio, &rt, &module, &inv));
        common::emit(
            G,
            &format!("{language}: postStart call"),
            s,
            &baseline("postStart call"),
            &format!(
                "pooling runtime, fresh instance; first call {:.1} ms",
                first.as_secs_f64() * 1e3
            ),
        );
    }
}

/// A pooling runtime without a disk cache that loads `.cwasm` files (our own artifacts).
fn runtime() -> HookRuntime {
    HookRuntime::new(RuntimeConfig {
        allocator: Allocator::Pooling { max_instances: 8 },
        cache_dir: None,
        allow_precompiled: true,
        default_limits: Limits::default(),
    })
    .unwrap()
}

fn invocation(volume: &Path) -> Invocation {
    Invocation {
        args: vec!["hook.component.wasm".into()],
        preopens: vec![Preopen {
            host: volume.to_path_buf(),
            guest: "/data".into(),
            read_only: false,
            volume: Some("data".into()),
        }],
        limits: Limits {
            timeout: Duration::from_secs(60),
            max_memory: MAX_MEMORY,
            ..Limits::default()
        },
        identity: Some(HookIdentity {
            pod: PodRef {
                name: "bench".into(),
                namespace: "default".into(),
                uid: "uid-bench".into(),
            },
            container: "app".into(),
            kind: HookKind::PostStart,
        }),
        ..Invocation::default()
    }
}

fn call(tokio: &tokio::runtime::Runtime, rt: &HookRuntime, module: &HookModule, inv: &Invocation) {
    let out = tokio.block_on(rt.run(module, inv.clone()));
    assert!(out.is_success(), "{out:?}");
}
