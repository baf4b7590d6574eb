//! Modules found in containers, compiled once per file content for the whole node, and
//! compiled off the request path.
//!
//! A module file is known by its identity on disk (device, inode, size, mtime): a warm call
//! costs one `fstat`, no read and no hash. A new file is read and handed to
//! [`HookRuntime::load_bytes`] (which dedups by content and uses the disk cache), on a
//! blocking thread, under a bound of its own ([`CriProxyConfig::compile_timeout`]): compile
//! time is never charged to the call's deadline, and concurrent calls for the same new file
//! wait for one compile. A compile that outlives its bound goes on in the background, and
//! later calls use its result.
//!
//! [`CriProxyConfig::compile_timeout`]: super::CriProxyConfig::compile_timeout

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;

use crate::lock;
use crate::wasm::{HookModule, HookRuntime};

pub use crate::handlers::exec::MAX_MODULE_SIZE;

/// Entries kept before the table is cleared (modules stay in the runtime's content cache).
const MAX_ENTRIES: usize = 4096;

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

pub struct Modules {
    slots: Mutex<HashMap<FileKey, Slot>>,
    compile_timeout: Duration,
}

impl Modules {
    pub fn new(compile_timeout: Duration) -> Self {
        Modules {
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
