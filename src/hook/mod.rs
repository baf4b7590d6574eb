//! The hook vocabulary every layer shares: which hook runs ([`HookKind`]) and with which
//! limits and switches ([`HookSettings`], [`HttpStatusMode`]), and the network a hook may use
//! ([`network`]).
//!
//! **Architecture Invariant:** this is a leaf: it imports nothing of the crate, so
//! `manifest`, `wasm`, `handlers`, `engine` and the CRI front can all name these types
//! without importing each other. Keep it plain data: no I/O, no async, no wasmtime types.
//!
//! The hook-level defaults ([`DEFAULT_TIMEOUT`], [`DEFAULT_MAX_MEMORY`]) are written here
//! once; [`crate::wasm::Limits::default`] reads them too, so a hook and a bare wasm call
//! (`wasmhook hook run`) get the same bounds. (They live here, not in `wasm`, because
//! `wasm` imports this module: the other way round would be an import cycle.)

pub mod network;

use std::fmt;
use std::time::Duration;

pub use network::{HookNetwork, PodScope};

/// Wall-clock bound of a hook (and of a wasm call) unless configured: 30 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Linear memory cap of a wasm hook unless configured: 64 MiB.
pub const DEFAULT_MAX_MEMORY: u64 = 64 << 20;

/// Which hook of a container is running.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum HookKind {
    #[default]
    PostStart,
    PreStop,
}

impl HookKind {
    /// The manifest spelling, also used for `WASMHOOK_HOOK` and annotation suffixes.
    pub fn as_str(self) -> &'static str {
        match self {
            HookKind::PostStart => "postStart",
            HookKind::PreStop => "preStop",
        }
    }
}

impl fmt::Display for HookKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether an httpGet hook looks at the status code (`wasmhook.dev/http-status`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HttpStatusMode {
    /// The kubelet's behaviour: only transport errors fail.
    #[default]
    Ignore,
    /// A status outside 200..=399 fails the hook, as for probes.
    Strict,
}

/// Limits and switches of one hook run, after annotations and engine defaults are merged
/// (`wasmhook.dev/hook-*` annotations override fields one by one, see
/// [`crate::manifest::annotations`]).
///
/// Defaults ([`HookSettings::default`]): those of a wasm call
/// ([`crate::wasm::Limits::default`], from the same constants): 30 s, no fuel, 64 MiB, no
/// network ([`HookNetwork::Deny`]); and [`HttpStatusMode::Ignore`]. `wasm::Limits::hook_settings` and
/// `wasm::Limits::with_hook_settings` convert between the two.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookSettings {
    /// Wall-clock bound of the whole hook, host calls included. Default: 30 s
    /// ([`DEFAULT_TIMEOUT`]).
    pub timeout: Duration,
    /// Instruction budget for wasm hooks; `None` disables fuel metering. Default: `None`.
    pub fuel: Option<u64>,
    /// Linear memory cap for wasm hooks, in bytes. Default: 64 MiB
    /// ([`DEFAULT_MAX_MEMORY`]).
    pub max_memory: u64,
    /// What a wasm hook may reach over the network (WASI sockets, name lookup, `wasi:http`).
    /// Default: [`HookNetwork::Deny`] (nothing).
    pub network: HookNetwork,
    /// Default: [`HttpStatusMode::Ignore`], the kubelet's behaviour.
    pub http_status: HttpStatusMode,
}

impl Default for HookSettings {
    fn default() -> Self {
        HookSettings {
            timeout: DEFAULT_TIMEOUT,
            fuel: None,
            max_memory: DEFAULT_MAX_MEMORY,
            network: HookNetwork::Deny,
            http_status: HttpStatusMode::Ignore,
        }
    }
}
