//! The WebAssembly hook runtime. (Being written: issue 3.)

/// The shared wasm hook runtime. Cheap to clone, `Send + Sync`.
#[derive(Clone, Debug, Default)]
pub struct HookRuntime {}
