//! Host bindings of the typed hook world (`wit/hook.wit`).

wasmtime::component::bindgen!({
    path: "wit",
    world: "hook",
    exports: { default: async },
});

pub(crate) use self::wasmhook::hook::types::{Context, HookKind as WitHookKind, Volume};

/// The name typed hook components import the world's type definitions under.
pub(crate) const TYPES_INTERFACE: &str = "wasmhook:hook/types@0.1.0";
