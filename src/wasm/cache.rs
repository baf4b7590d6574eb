//! Loading hook modules: format detection, compilation, and the two caches.
//!
//! - In memory: one [`HookModule`] per content hash (sha256 of the wasm binary), ready to
//!   instantiate ([`wasmtime::InstancePre`] or its component equivalents). Loading by path
//!   re-reads the file only when its length or mtime changed.
//! - On disk: compiled artifacts under `<cache_dir>/<engine compatibility hash>/<sha256>.cwasm`,
//!   so a second process deserializes instead of compiling. Each file starts with a magic
//!   string and the sha256 of the artifact; an entry that does not check out (corrupt,
//!   truncated, foreign) is deleted and rebuilt, never handed to wasmtime.

use crate::lock;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{InstancePre, Module};
use wasmtime_wasi::p2::bindings::CommandPre;

use super::context::{P1State, P2State};
use super::typed::HookPre;
use super::{EngineSet, HookRuntime, Inner};

/// Why a module could not be loaded. The CLI maps these to exit codes 127 and 126.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{}: module not found", .0.display())]
    NotFound(PathBuf),
    #[error("{}: {}", .0.display(), .1)]
    Read(PathBuf, std::io::Error),
    #[error("{name}: invalid hook module: {reason}")]
    Invalid { name: String, reason: String },
    #[error("{0}: is a precompiled module; these are only loaded with --allow-precompiled (deserializing untrusted code is unsafe)")]
    PrecompiledRefused(String),
}

/// What kind of hook a module is, detected from its binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModuleKind {
    /// A WASI preview 1 core module with a `_start` export.
    P1Command,
    /// A WASI preview 2 component exporting `wasi:cli/run`.
    P2Command,
    /// A component exporting `wasmhook:hook/handler` (see `wit/hook.wit`).
    TypedHook,
}

/// A module ready to instantiate in one engine.
pub(crate) enum Prepared {
    P1(InstancePre<P1State>),
    Command(CommandPre<P2State>),
    Typed(HookPre<P2State>),
}

enum Source {
    /// The wasm binary (WAT already converted), kept to compile for the fuel engine on demand.
    Wasm(Arc<[u8]>),
    /// A precompiled file the user allowed; usable only by the engine it was loaded into.
    Precompiled,
}

struct ModuleInner {
    name: String,
    hash: [u8; 32],
    kind: ModuleKind,
    source: Source,
    /// Prepared for the engine without fuel, at load.
    plain: Prepared,
    /// Prepared for the fuel engine on its first call with fuel.
    fueled: OnceLock<Prepared>,
}

/// A loaded hook module. Cheap to clone; shared by every call that runs it.
#[derive(Clone)]
pub struct HookModule(Arc<ModuleInner>);

impl std::fmt::Debug for HookModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookModule")
            .field("name", &self.0.name)
            .field("kind", &self.0.kind)
            .finish_non_exhaustive()
    }
}

impl HookModule {
    /// The file name it was loaded from (used as `argv[0]` by the CLI).
    pub fn name(&self) -> &str {
        &self.0.name
    }

    pub fn kind(&self) -> ModuleKind {
        self.0.kind
    }

    /// sha256 of the wasm binary, hex.
    pub fn content_hash(&self) -> String {
        hex(&self.0.hash)
    }
}

/// Counts of how modules were obtained, for operators and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    /// Modules compiled from wasm.
    pub compiled: u64,
    /// Compiled artifacts loaded from the disk cache.
    pub disk_hits: u64,
    /// Disk cache entries found invalid, deleted and rebuilt.
    pub disk_rejected: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    compiled: AtomicU64,
    disk_hits: AtomicU64,
    disk_rejected: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> CacheStats {
        CacheStats {
            compiled: self.compiled.load(Ordering::Relaxed),
            disk_hits: self.disk_hits.load(Ordering::Relaxed),
            disk_rejected: self.disk_rejected.load(Ordering::Relaxed),
        }
    }
}

pub(crate) struct PathEntry {
    len: u64,
    mtime: SystemTime,
    module: HookModule,
}

impl HookRuntime {
    /// Load a hook module from a file: `.wasm` (core module or component, told apart by its
    /// header), `.wat` text, or a precompiled `.cwasm` when allowed. Cached by path (checked
    /// against length and mtime) and by content.
    pub fn load_file(&self, path: &Path) -> Result<HookModule, LoadError> {
        let meta = match fs::metadata(path) {
            Ok(m) if m.is_file() => m,
            Ok(_) => {
                return Err(LoadError::Invalid {
                    name: path.display().to_string(),
                    reason: "not a regular file".into(),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(LoadError::NotFound(path.to_owned()))
            }
            Err(e) => return Err(LoadError::Read(path.to_owned(), e)),
        };
        let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        if let Some(e) = lock(&self.inner.paths).get(path) {
            if e.len == meta.len() && e.mtime == mtime {
                return Ok(e.module.clone());
            }
        }
        let bytes = fs::read(path).map_err(|e| LoadError::Read(path.to_owned(), e))?;
        let module = self.load_bytes(&path.display().to_string(), &bytes)?;
        lock(&self.inner.paths).insert(
            path.to_owned(),
            PathEntry {
                len: meta.len(),
                mtime,
                module: module.clone(),
            },
        );
        Ok(module)
    }

    /// Load a hook module from bytes (binary or WAT text). `name` is used in messages.
    pub fn load_bytes(&self, name: &str, bytes: &[u8]) -> Result<HookModule, LoadError> {
        let invalid = |reason: String| LoadError::Invalid {
            name: name.to_owned(),
            reason,
        };
        if wasmtime::Engine::detect_precompiled(bytes).is_some() {
            return self.load_precompiled(name, bytes);
        }
        let binary: Arc<[u8]> = if bytes.starts_with(b"\0asm") {
            bytes.into()
        } else {
            wat::parse_bytes(bytes)
                .map_err(|e| invalid(format!("not a wasm binary, and not valid WAT: {e}")))?
                .into_owned()
                .into()
        };
        let hash: [u8; 32] = Sha256::digest(&binary).into();
        if let Some(m) = lock(&self.inner.modules).get(&hash) {
            return Ok(m.clone());
        }
        let prepared =
            prepare(&self.inner.plain, &self.inner.stats, &binary, &hash).map_err(invalid)?;
        let module = HookModule(Arc::new(ModuleInner {
            name: name.to_owned(),
            hash,
            kind: prepared.kind(),
            source: Source::Wasm(binary),
            plain: prepared,
            fueled: OnceLock::new(),
        }));
        lock(&self.inner.modules).insert(hash, module.clone());
        Ok(module)
    }

    fn load_precompiled(&self, name: &str, bytes: &[u8]) -> Result<HookModule, LoadError> {
        if !self.inner.config.allow_precompiled {
            return Err(LoadError::PrecompiledRefused(name.to_owned()));
        }
        let invalid = |reason: String| LoadError::Invalid {
            name: name.to_owned(),
            reason,
        };
        let set = &self.inner.plain;
        // SAFETY: the user explicitly trusted precompiled files (`allow_precompiled`); wasmtime
        // still checks the header, version and engine compatibility before using them.
        let prepared = unsafe { deserialize(set, bytes) }
            .map_err(|e| invalid(format!("cannot load precompiled module: {e}")))
            .and_then(|d| link(set, d).map_err(invalid))?;
        Ok(HookModule(Arc::new(ModuleInner {
            name: name.to_owned(),
            hash: Sha256::digest(bytes).into(),
            kind: prepared.kind(),
            source: Source::Precompiled,
            plain: prepared,
            fueled: OnceLock::new(),
        })))
    }

    /// The module prepared for the engine that runs calls with (`fuel`) or without fuel.
    /// Borrowed, not cloned: every call reads it, and a shared reference count would be one
    /// more cache line bouncing between the cores that run calls.
    pub(crate) fn prepared<'m>(
        inner: &Inner,
        module: &'m HookModule,
        fuel: bool,
    ) -> Result<&'m Prepared, String> {
        let m = &module.0;
        if !fuel {
            return Ok(&m.plain);
        }
        if let Some(p) = m.fueled.get() {
            return Ok(p);
        }
        let Source::Wasm(binary) = &m.source else {
            return Err("a precompiled module cannot run with fuel metering".into());
        };
        let set = inner.engines(true).map_err(|e| e.to_string())?;
        let p = prepare(set, &inner.stats, binary, &m.hash)?;
        Ok(m.fueled.get_or_init(|| p))
    }

    /// Compile a module to wasmtime's precompiled format for this runtime's engine, as
    /// `wasmhook compile` does. The result loads with `allow_precompiled`.
    pub fn precompile(&self, bytes: &[u8]) -> Result<Vec<u8>, String> {
        let binary = wat::parse_bytes(bytes).map_err(|e| e.to_string())?;
        let engine = &self.inner.plain.engine;
        if is_component(&binary) {
            engine.precompile_component(&binary)
        } else {
            engine.precompile_module(&binary)
        }
        .map_err(|e| format!("{e:?}"))
    }
}

impl Prepared {
    fn kind(&self) -> ModuleKind {
        match self {
            Prepared::P1(_) => ModuleKind::P1Command,
            Prepared::Command(_) => ModuleKind::P2Command,
            Prepared::Typed(_) => ModuleKind::TypedHook,
        }
    }
}

enum Compiled {
    Module(Module),
    Component(Component),
}

fn is_component(binary: &[u8]) -> bool {
    // Core modules have version 1 and layer 0; components have layer 1.
    binary.get(4..8) == Some(&[0x0d, 0x00, 0x01, 0x00])
}

/// Compile (or fetch from the disk cache) and link `binary` for `set`'s engine.
fn prepare(
    set: &EngineSet,
    stats: &Counters,
    binary: &[u8],
    hash: &[u8; 32],
) -> Result<Prepared, String> {
    let cache_file = set
        .cache_dir
        .as_ref()
        .map(|d| d.join(format!("{}.cwasm", hex(hash))));
    if let Some(file) = &cache_file {
        if let Some(compiled) = read_cache(set, stats, file) {
            stats.disk_hits.fetch_add(1, Ordering::Relaxed);
            return link(set, compiled);
        }
    }
    let compiled = if is_component(binary) {
        Component::new(&set.engine, binary).map(Compiled::Component)
    } else {
        Module::new(&set.engine, binary).map(Compiled::Module)
    }
    // `{e:#}`: the cause chain on one line, without the Rust backtrace `{e:?}` appends when
    // RUST_BACKTRACE is set.
    .map_err(|e| format!("{e:#}"))?;
    stats.compiled.fetch_add(1, Ordering::Relaxed);
    if let Some(file) = &cache_file {
        let artifact = match &compiled {
            Compiled::Module(m) => m.serialize(),
            Compiled::Component(c) => c.serialize(),
        };
        match artifact {
            Ok(a) => write_cache(file, &a),
            Err(e) => tracing::warn!("cannot serialize compiled module for the cache: {e}"),
        }
    }
    link(set, compiled)
}

fn link(set: &EngineSet, compiled: Compiled) -> Result<Prepared, String> {
    match compiled {
        Compiled::Module(module) => {
            if module.get_export("_start").is_none() {
                return Err("it exports no `_start`: a hook must be a WASI command (a `main` program), not a library".into());
            }
            let pre = set
                .p1()
                .and_then(|linker| linker.instantiate_pre(&module))
                .map_err(|e| format!("{e}"))?;
            Ok(Prepared::P1(pre))
        }
        Compiled::Component(component) => {
            let pre = set
                .p2()
                .and_then(|linker| linker.instantiate_pre(&component))
                .map_err(|e| format!("{e}"))?;
            if let Ok(typed) = HookPre::new(pre.clone()) {
                return Ok(Prepared::Typed(typed));
            }
            CommandPre::new(pre).map(Prepared::Command).map_err(|_| {
                "the component exports neither `wasi:cli/run` nor `wasmhook:hook/handler`".into()
            })
        }
    }
}

/// Magic prefix of our cache files, followed by the sha256 of the artifact.
const CACHE_MAGIC: &[u8; 16] = b"wasmhook-cwasm-1";

fn read_cache(set: &EngineSet, stats: &Counters, file: &Path) -> Option<Compiled> {
    let bytes = fs::read(file).ok()?;
    let valid = bytes.len() > 48
        && bytes.starts_with(CACHE_MAGIC)
        && Sha256::digest(&bytes[48..]).as_slice() == &bytes[16..48];
    // SAFETY: the artifact is one this engine configuration serialized (the directory is keyed
    // by the engine's compatibility hash) and its checksum matches, so it is the bytes we wrote.
    let compiled = valid.then(|| unsafe { deserialize(set, &bytes[48..]) });
    match compiled {
        Some(Ok(c)) => Some(c),
        _ => {
            tracing::warn!("ignoring invalid cache entry {}", file.display());
            stats.disk_rejected.fetch_add(1, Ordering::Relaxed);
            let _ = fs::remove_file(file);
            None
        }
    }
}

/// # Safety
/// `bytes` must be wasmtime-serialized code from a trusted source.
unsafe fn deserialize(set: &EngineSet, bytes: &[u8]) -> wasmtime::Result<Compiled> {
    match wasmtime::Engine::detect_precompiled(bytes) {
        Some(wasmtime::Precompiled::Component) => {
            unsafe { Component::deserialize(&set.engine, bytes) }.map(Compiled::Component)
        }
        _ => unsafe { Module::deserialize(&set.engine, bytes) }.map(Compiled::Module),
    }
}

/// Best effort: a cache that cannot be written (read-only, disk full) only costs speed.
fn write_cache(file: &Path, artifact: &[u8]) {
    let result = (|| -> std::io::Result<()> {
        let dir = file.parent().expect("cache files live in a directory");
        fs::create_dir_all(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        tmp.write_all(CACHE_MAGIC)?;
        tmp.write_all(&Sha256::digest(artifact))?;
        tmp.write_all(artifact)?;
        tmp.persist(file).map_err(|e| e.error)?;
        Ok(())
    })();
    if let Err(e) = result {
        tracing::warn!("cannot write compile cache {}: {e}", file.display());
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
/// Whether a host file named by an exec handler is meant as a hook module, to be loaded
/// rather than run natively: by its name ([`crate::hook::names_a_module`]) or a wasm binary
/// by its magic `\0asm`. Host files are the operator's; a file found inside a container is
/// judged by its content alone ([`crate::handlers::exec::lookup::command_kind`]), never as
/// precompiled code.
pub fn is_module_file(path: &Path) -> bool {
    if crate::hook::names_a_module(&path.to_string_lossy()) {
        return true;
    }
    let mut magic = [0u8; 4];
    fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok_and(|()| &magic == b"\0asm")
}
