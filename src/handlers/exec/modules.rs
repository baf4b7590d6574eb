//! Modules found in containers, compiled once per file content, off the call's path, for
//! both fronts: exec hooks and probes of the engine (`/proc/<pid>/root` of a runc
//! container) and wasm `ExecSync` calls of the CRI proxy.
//!
//! A module file is known by its identity on disk (device, inode, size, mtime): a warm call
//! costs one `fstat`, no read and no hash. A new file is read and handed to
//! [`HookRuntime::load_bytes`] (which dedups by content and uses the disk cache), on a
//! blocking thread, under a bound of its own ([`ContainerModules::new`]): compile time is
//! never charged to the call's deadline, and concurrent calls for the same new file wait
//! for one compile. A compile that outlives its bound goes on in the background, and later
//! calls use its result.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;

use crate::lock;
use crate::wasm::{HookModule, HookRuntime};

use super::MAX_MODULE_SIZE;

/// Entries kept before the table is cleared (modules stay in the runtime's content cache).
const MAX_ENTRIES: usize = 4096;

/// How long a call waits for a new module to compile, unless told otherwise: a large
/// component (an interpreter) takes seconds on a busy node.
pub const DEFAULT_COMPILE_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
struct FileKey {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
    fuel: bool,
}

type Slot = Arc<OnceCell<Result<HookModule, String>>>;

/// The table of modules found in containers. `Send + Sync`; one per front.
pub struct ContainerModules {
    slots: Mutex<HashMap<FileKey, Slot>>,
    compile_timeout: Duration,
}

impl ContainerModules {
    /// A call waits at most `compile_timeout` for a new module to compile.
    pub fn new(compile_timeout: Duration) -> Self {
        ContainerModules {
            slots: Mutex::new(HashMap::new()),
            compile_timeout,
        }
    }

    /// The module in `file` (named `name` in messages), prepared for calls with or
    /// without fuel.
    pub async fn load(
        &self,
        rt: &HookRuntime,
        file: File,
        name: &str,
        fuel: bool,
    ) -> Result<HookModule, String> {
        let meta = file.metadata().map_err(|e| format!("{name}: {e}"))?;
        if meta.size() > MAX_MODULE_SIZE {
            return Err(format!(
                "{name}: module is {} bytes, more than the {} bytes wasmhook reads",
                meta.size(),
                MAX_MODULE_SIZE
            ));
        }
        let key = FileKey {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
            fuel,
        };
        let slot = {
            let mut slots = lock(&self.slots);
            if slots.len() >= MAX_ENTRIES && !slots.contains_key(&key) {
                slots.clear();
            }
            slots.entry(key).or_default().clone()
        };
        if let Some(r) = slot.get() {
            return r.clone();
        }
        let rt = rt.clone();
        let name_owned = name.to_owned();
        let compile = tokio::spawn(async move {
            slot.get_or_init(|| async move {
                tokio::task::spawn_blocking(move || compile(&rt, file, &name_owned, fuel))
                    .await
                    .unwrap_or_else(|e| Err(format!("compiling panicked: {e}")))
            })
            .await
            .clone()
        });
        match tokio::time::timeout(self.compile_timeout, compile).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(format!("compiling failed: {e}")),
            Err(_) => Err(format!(
                "{name}: compiling took longer than {}; it goes on in the background and later calls will use it",
                humantime::format_duration(self.compile_timeout)
            )),
        }
    }
}

fn compile(rt: &HookRuntime, mut file: File, name: &str, fuel: bool) -> Result<HookModule, String> {
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| format!("{name}: {e}"))?;
    let module = rt.load_bytes(name, &bytes).map_err(|e| e.to_string())?;
    if fuel {
        // Fuel-metered calls use a second engine: prepare for it here too, so no call pays
        // for a compile.
        HookRuntime::prepared(&rt.inner, &module, true)?;
    }
    Ok(module)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wasm::{Allocator, RuntimeConfig};

    const NOOP: &str = r#"(module (memory (export "memory") 1) (func (export "_start")))"#;
    // Same length as NOOP, other content.
    const NOPE: &str = r#"(module (memory (export "memory") 2) (func (export "_start")))"#;

    fn open(path: &std::path::Path) -> File {
        File::open(path).unwrap()
    }

    #[tokio::test]
    async fn a_file_is_read_once_per_identity() {
        let rt = HookRuntime::new(RuntimeConfig {
            allocator: Allocator::OnDemand,
            cache_dir: None,
            ..RuntimeConfig::default()
        })
        .unwrap();
        let modules = ContainerModules::new(DEFAULT_COMPILE_TIMEOUT);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hook.wat");
        std::fs::write(&path, NOOP).unwrap();
        let first = modules
            .load(&rt, open(&path), "hook.wat", false)
            .await
            .unwrap();

        // Rewritten in place with the same length and mtime: the same identity, so the
        // module comes from the table, not from the file.
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::fs::write(&path, NOPE).unwrap();
        open(&path).set_modified(mtime).unwrap();
        let warm = modules
            .load(&rt, open(&path), "hook.wat", false)
            .await
            .unwrap();
        assert_eq!(warm.content_hash(), first.content_hash());

        // A new mtime is a new identity: read and compiled again.
        let later = mtime + Duration::from_secs(1);
        open(&path).set_modified(later).unwrap();
        let changed = modules
            .load(&rt, open(&path), "hook.wat", false)
            .await
            .unwrap();
        assert_ne!(changed.content_hash(), first.content_hash());
    }
}
