//! The hook vocabulary every layer shares: which hook runs ([`HookKind`]) and with which
//! limits and switches ([`HookSettings`], [`HttpStatusMode`], [`ExecPolicy`]), and the network a hook may use
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

/// Which exec handlers may run as native commands (`--exec-policy`, the pod annotation
/// `wasmhook.dev/exec-policy`). The stricter of the operator's flag and the pod's
/// annotation applies: a pod cannot loosen its node's policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExecPolicy {
    /// A command that is a wasm module runs sandboxed; any other runs natively in the
    /// container, as the kubelet runs it (the same rule as the CRI front's).
    #[default]
    Auto,
    /// Only wasm modules run; a native command is refused.
    WasmOnly,
}

impl ExecPolicy {
    /// The spellings of `--exec-policy` and the annotation, in variant order.
    pub const KEYWORDS: [&'static str; 2] = ["auto", "wasm-only"];

    pub fn as_str(self) -> &'static str {
        match self {
            ExecPolicy::Auto => Self::KEYWORDS[0],
            ExecPolicy::WasmOnly => Self::KEYWORDS[1],
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "auto" => Some(ExecPolicy::Auto),
            "wasm-only" => Some(ExecPolicy::WasmOnly),
            _ => None,
        }
    }
}

/// Whether an exec handler's `command[0]` is named as a hook module is (`.wasm`, `.wat`,
/// `.cwasm`): a host file so named is loaded as one (and is invalid if it does not load),
/// and such a name found nowhere is a missing module, not a native command.
pub fn names_a_module(command0: &str) -> bool {
    std::path::Path::new(command0)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e, "wasm" | "wat" | "cwasm"))
}

/// What a host file named by an exec handler's `command[0]` is, as the hook runtime judges
/// it (for manifest validation, which does not load modules itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostCommand {
    /// A hook module that loads: it runs sandboxed.
    Module,
    /// Not a wasm module: a native command, run in the container if the exec policy allows.
    Native,
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
    /// Whether a command that is not wasm may run natively. Default: [`ExecPolicy::Auto`].
    pub exec_policy: ExecPolicy,
}

impl Default for HookSettings {
    fn default() -> Self {
        HookSettings {
            timeout: DEFAULT_TIMEOUT,
            fuel: None,
            max_memory: DEFAULT_MAX_MEMORY,
            network: HookNetwork::Deny,
            http_status: HttpStatusMode::Ignore,
            exec_policy: ExecPolicy::Auto,
        }
    }
}
