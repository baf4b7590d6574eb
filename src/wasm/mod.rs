//! The WebAssembly hook runtime: wasmtime + WASI, with limits.
//!
//! A [`HookRuntime`] owns the wasmtime engines, the linkers and the module caches. It is cheap
//! to clone, `Send + Sync`, and holds no global state: embedders create as many as they like.
//!
//! ```text
//!  load_file(path) ──► HookModule (compiled once: memory cache by content hash,
//!                       │             disk cache of compiled artifacts)
//!  run(&module, Invocation) ──► fresh Store + instance per call ──► ExecOutcome
//! ```
//!
//! Invariants:
//! - Every call gets a fresh instance: hooks share no state with each other.
//! - A call ends by itself: the wall-clock timeout bounds wasm code (epoch interruption, checked
//!   every [`EPOCH_TICK`]) *and* blocking host calls (the whole call future is dropped at the
//!   deadline). Dropping the future returned by [`HookRuntime::run`] stops the hook too.
//!   A filesystem host call already running on a tokio blocking thread cannot be
//!   interrupted: the call ends at its deadline, the thread when the host call returns. The
//!   one a hook can cause at will, the open of a FIFO in its volume without a partner, is
//!   ended when the call stops: the runtime opens that FIFO itself (`stuck.rs`). Others (a
//!   hung network filesystem) keep their thread. Dropping a tokio runtime waits for its
//!   blocking threads, so shut it down with `shutdown_background` or `shutdown_timeout`
//!   (the CLI does).
//! - Hook failures of any kind are data ([`ExecStatus`]), never panics or `Err`s.
//! - Fuel is metered only when a hook asks for it: fuel instrumentation slows every loop, so
//!   modules for fuelled calls are compiled by a second engine, created on first use.
//! - Precompiled code (`.cwasm`) is deserialized only from our own cache, after checking its
//!   checksum, or from a file when [`RuntimeConfig::allow_precompiled`] says so.

mod cache;
mod context;
mod invoke;
mod limits;
mod network;
mod outcome;
mod output;
mod queue;
mod stuck;
mod typed;

pub use cache::{is_module_file, CacheStats, HookModule, LoadError, ModuleKind};
pub use context::call_env;
pub use invoke::{HookIdentity, Invocation, Preopen};
pub use limits::Limits;
pub use outcome::{ExecOutcome, ExecStatus};
pub use output::{CapturedOutput, OutputBuffer};

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use wasmtime::component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, Linker, PoolingAllocationConfig};

use context::{P1State, P2State};

/// How often the epoch advances. It is the resolution of the wall-clock timeout and the
/// longest a running hook goes without yielding to the async executor.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Default [`Allocator::Pooling::max_instances`]: concurrent hook calls, not hooks in total.
pub const DEFAULT_POOL_SIZE: u32 = 256;

/// Bytes of each pooled linear memory and table that a finished call leaves resident, reset
/// with `memset` instead of `madvise`. Every `madvise` of a multi-threaded process makes the
/// other CPUs flush their TLBs (an interrupt each): at tens of thousands of hooks per second
/// that was a fifth of the time. With `PAGEMAP_SCAN` (Linux 6.7+, see [`pooling_config`]) only
/// the pages a call dirtied are reset and count against it, wherever they are: a Rust hook's
/// stack, data and heap pages fit. Warm slots keep at most this much each (wasmtime keeps up
/// to 100 unused warm slots).
const POOL_KEEP_RESIDENT: usize = 64 << 10;

/// The pool of a pooling runtime of `max_instances` concurrent calls: its limits and how a
/// finished call's slot is reset. Public so that benchmarks give bare wasmtime the very same
/// pool as their baseline.
pub fn pooling_config(max_instances: u32) -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_core_instances(max_instances * 4)
        .total_component_instances(max_instances)
        .total_memories(max_instances * 4)
        .total_tables(max_instances * 4)
        .total_stacks(max_instances)
        .max_memories_per_component(8)
        .max_tables_per_component(8)
        .max_core_instances_per_component(16)
        // Hooks have a per-call memory cap (`Limits::max_memory`, 64 MiB by default); this
        // is the ceiling of any cap a hook can be given with this allocator.
        .max_memory_size(1 << 30)
        // Likewise the ceiling of `Limits::max_table_elements`.
        .table_elements(20_000)
        .linear_memory_keep_resident(POOL_KEEP_RESIDENT)
        .table_keep_resident(POOL_KEEP_RESIDENT)
        // Reset only the pages a call dirtied, where the kernel can tell (6.7+). It costs a
        // noop call ~0.4 µs and makes a real hook's reset a few memsets.
        .pagemap_scan(wasmtime::Enabled::Auto);
    pool
}

/// How instances get their memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allocator {
    /// Pre-reserved slots: microseconds per instance, a few ms of set-up. For long-running
    /// engines (`wasmhook run`, embedders).
    Pooling {
        /// Hook calls (instances, with their memories, tables and fiber stacks) that can run at
        /// once; further calls queue for a slot within their timeout. Every slot costs address
        /// space and memory mappings (which makes `fork` of container processes slower), so
        /// size it to the concurrency you need, not to the number of hooks.
        max_instances: u32,
    },
    /// mmap per instance: no set-up cost. For one-shot processes (`wasmhook hook run`).
    OnDemand,
}

/// Configuration of a [`HookRuntime`].
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// How instances are allocated. Default: the pooling allocator with
    /// [`DEFAULT_POOL_SIZE`] slots.
    pub allocator: Allocator,
    /// Directory of the compiled-artifact cache; `None` disables it.
    /// Default: [`default_cache_dir`].
    pub cache_dir: Option<PathBuf>,
    /// Accept precompiled `.cwasm` files given by path. Deserializing them is `unsafe` in
    /// wasmtime (the bytes are trusted to be wasmtime's own output), so this is off by default.
    pub allow_precompiled: bool,
    /// Limits of calls that do not say otherwise. Default: [`Limits::default`].
    pub default_limits: Limits,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            allocator: Allocator::Pooling {
                max_instances: DEFAULT_POOL_SIZE,
            },
            cache_dir: default_cache_dir(),
            allow_precompiled: false,
            default_limits: Limits::default(),
        }
    }
}

/// `$XDG_CACHE_HOME/wasmhook`, else `$HOME/.cache/wasmhook`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("wasmhook"))
}

/// One wasmtime engine with the linkers for both WASI flavours.
pub(crate) struct EngineSet {
    pub(crate) engine: Engine,
    /// Built on first use ([`EngineSet::p1`], [`EngineSet::p2`]): defining the WASI imports
    /// is a large part of a one-shot `hook run`, which only ever needs one of the two.
    p1: OnceLock<Linker<P1State>>,
    p2: OnceLock<component::Linker<P2State>>,
    /// Where calls beyond the pool's capacity wait for a slot (within their own timeout)
    /// instead of failing to instantiate. `None` on demand.
    pub(crate) queue: Option<queue::PoolQueue>,
    /// Directory of this engine's compiled artifacts (the engine's compatibility hash is part
    /// of the path, so artifacts of other wasmtime versions or settings are never looked at).
    pub(crate) cache_dir: Option<PathBuf>,
}

impl EngineSet {
    fn new(config: &RuntimeConfig, fuel: bool) -> wasmtime::Result<Self> {
        let mut c = Config::new();
        c.epoch_interruption(true)
            .consume_fuel(fuel)
            .wasm_component_model(true);
        if let Allocator::Pooling { max_instances } = config.allocator {
            let pool = pooling_config(max_instances);
            c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = Engine::new(&c)?;
        let cache_dir = config.cache_dir.as_ref().map(|d| {
            use std::hash::{DefaultHasher, Hash, Hasher};
            let mut h = DefaultHasher::new();
            engine.precompile_compatibility_hash().hash(&mut h);
            d.join(format!("{:016x}", h.finish()))
        });
        let queue = match config.allocator {
            Allocator::Pooling { .. } => Some(queue::PoolQueue::default()),
            Allocator::OnDemand => None,
        };
        Ok(EngineSet {
            engine,
            p1: OnceLock::new(),
            p2: OnceLock::new(),
            queue,
            cache_dir,
        })
    }

    /// The linker for core modules (WASI preview 1).
    pub(crate) fn p1(&self) -> wasmtime::Result<&Linker<P1State>> {
        if let Some(linker) = self.p1.get() {
            return Ok(linker);
        }
        let mut p1 = Linker::new(&self.engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut p1, |s: &mut P1State| &mut s.wasi)?;
        // wasmtime-wasi turns `proc_exit(n)` with n outside [0, 126) into an untyped error
        // that loses `n`, so `exit(255)` would be reported as a trap: keep every code.
        p1.allow_shadowing(true);
        p1.func_wrap(
            "wasi_snapshot_preview1",
            "proc_exit",
            |_: wasmtime::Caller<'_, P1State>, code: i32| -> wasmtime::Result<()> {
                Err(wasmtime_wasi::I32Exit(code).into())
            },
        )?;
        p1.allow_shadowing(false);
        Ok(self.p1.get_or_init(|| p1))
    }

    /// The linker for components (WASI 0.2, wasi:http and the typed hook world).
    pub(crate) fn p2(&self) -> wasmtime::Result<&component::Linker<P2State>> {
        if let Some(linker) = self.p2.get() {
            return Ok(linker);
        }
        let mut p2 = component::Linker::new(&self.engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut p2)?;
        // Name lookups under the hook's network policy, and wasi:http (whose requests the
        // policy checks too: `P2State`'s `HttpPolicy`).
        network::add_to_linker(&mut p2)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut p2)?;
        // The typed hook world's `types` interface has only types: an empty instance.
        p2.instance(typed::TYPES_INTERFACE)?;
        Ok(self.p2.get_or_init(|| p2))
    }
}

pub(crate) struct Inner {
    pub(crate) config: RuntimeConfig,
    pub(crate) plain: EngineSet,
    pub(crate) fueled: OnceLock<EngineSet>,
    /// Loaded modules by content hash.
    pub(crate) modules: Mutex<HashMap<[u8; 32], HookModule>>,
    /// Loaded modules by path, with the file's length and mtime when it was read.
    pub(crate) paths: Mutex<HashMap<PathBuf, cache::PathEntry>>,
    pub(crate) stats: cache::Counters,
}

impl Inner {
    pub(crate) fn engines(&self, fuel: bool) -> wasmtime::Result<&EngineSet> {
        if !fuel {
            return Ok(&self.plain);
        }
        if let Some(set) = self.fueled.get() {
            return Ok(set);
        }
        let set = EngineSet::new(&self.config, true)?;
        Ok(self.fueled.get_or_init(|| set))
    }
}

/// The wasm hook runtime. See the module docs.
#[derive(Clone)]
pub struct HookRuntime {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for HookRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookRuntime")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl HookRuntime {
    /// Create the engine(s) and start the epoch ticker (a thread that ends with the runtime).
    pub fn new(config: RuntimeConfig) -> wasmtime::Result<Self> {
        let plain = EngineSet::new(&config, false)?;
        let inner = Arc::new(Inner {
            config,
            plain,
            fueled: OnceLock::new(),
            modules: Mutex::new(HashMap::new()),
            paths: Mutex::new(HashMap::new()),
            stats: Default::default(),
        });
        spawn_epoch_ticker(Arc::downgrade(&inner))?;
        Ok(HookRuntime { inner })
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// How modules were obtained so far: compiled, or read from the disk cache.
    pub fn cache_stats(&self) -> CacheStats {
        self.inner.stats.snapshot()
    }
}

/// Advance the epoch of every engine of the runtime each [`EPOCH_TICK`], until the runtime is
/// dropped. Holding only a `Weak` keeps the thread from keeping the runtime alive.
fn spawn_epoch_ticker(inner: Weak<Inner>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("wasmhook-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(EPOCH_TICK);
            let Some(inner) = inner.upgrade() else { return };
            inner.plain.engine.increment_epoch();
            if let Some(f) = inner.fueled.get() {
                f.engine.increment_epoch();
            }
        })?;
    Ok(())
}
