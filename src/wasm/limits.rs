//! Per-call limits and the store limiter that enforces the memory and table caps.

use std::time::{Duration, Instant};

use serde::Serialize;
use wasmtime::ResourceLimiter;

use crate::hook::{HookNetwork, HookSettings, DEFAULT_MAX_MEMORY, DEFAULT_TIMEOUT};

/// Limits of one hook call. Every field has a finite default: no call is unbounded.
/// Limits are not validated: a zero timeout or memory cap makes every call fail (with
/// [`super::ExecStatus::TimedOut`] or [`super::ExecStatus::MemoryLimit`]), it does not panic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Wall-clock bound of the whole call, blocking host calls included.
    /// Default: 30 s ([`crate::hook::DEFAULT_TIMEOUT`], shared with [`HookSettings`]).
    pub timeout: Duration,
    /// Instruction budget; `None` runs without fuel metering. Default: `None`.
    pub fuel: Option<u64>,
    /// Cap of each linear memory, in bytes.
    /// Default: 64 MiB ([`crate::hook::DEFAULT_MAX_MEMORY`], shared with [`HookSettings`]).
    pub max_memory: u64,
    /// Cap of each table, in elements. Default: 10 000.
    pub max_table_elements: u64,
    /// Instances, memories and tables one call may create (a component counts each core
    /// instance of its adapter too). Default: 32.
    pub max_instances: usize,
    /// Captured output (stdout + stderr) kept, in bytes; the rest is counted and dropped.
    /// Default: 1 MiB.
    pub max_output: usize,
    /// What the hook may reach: WASI sockets, name lookups and `wasi:http` requests, each
    /// checked by the host against this policy (preview 2 components only; preview 1 has no
    /// sockets). Default: [`HookNetwork::Deny`].
    pub network: HookNetwork,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: DEFAULT_TIMEOUT,
            fuel: None,
            max_memory: DEFAULT_MAX_MEMORY,
            max_table_elements: 10_000,
            max_instances: 32,
            max_output: 1 << 20,
            network: HookNetwork::Deny,
        }
    }
}

impl Limits {
    /// These limits with one hook's timeout, fuel, memory cap and network policy: the
    /// limits of one exec hook call.
    pub fn with_hook_settings(self, s: &HookSettings) -> Limits {
        Limits {
            timeout: s.timeout,
            fuel: s.fuel,
            max_memory: s.max_memory,
            network: s.network.clone(),
            ..self
        }
    }

    /// The hook-level part of these limits (the engine's hook defaults under the pod
    /// annotations), with the default HTTP status mode.
    pub fn hook_settings(&self) -> HookSettings {
        HookSettings {
            timeout: self.timeout,
            fuel: self.fuel,
            max_memory: self.max_memory,
            network: self.network.clone(),
            ..HookSettings::default()
        }
    }
}

/// Which cap a hook ran into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LimitHit {
    #[error("memory limit exceeded")]
    Memory,
    /// A memory's initial size (what the module declares, e.g. a Python or JavaScript
    /// runtime's snapshot of its heap) is already past the cap: the hook cannot start at all.
    #[error("initial memory of {0} bytes exceeds the memory limit")]
    InitialMemory(u64),
    #[error("table limit exceeded")]
    Table,
}

/// Enforces [`Limits`] inside a store. Growing past a cap traps with a [`LimitHit`] error (rather
/// than returning -1 from `memory.grow`), so a memory bomb stops at once with a clear reason.
pub(crate) struct StoreLimiter {
    max_memory: usize,
    max_table_elements: usize,
    max_instances: usize,
    /// When the call's timeout ends, checked at every epoch tick. Kept in the store data
    /// rather than captured by the epoch callback, whose closure then allocates nothing.
    pub(crate) deadline: Instant,
}

impl StoreLimiter {
    pub(crate) fn new(limits: &Limits, deadline: Instant) -> Self {
        StoreLimiter {
            max_memory: usize::try_from(limits.max_memory).unwrap_or(usize::MAX),
            max_table_elements: usize::try_from(limits.max_table_elements).unwrap_or(usize::MAX),
            max_instances: limits.max_instances,
            deadline,
        }
    }
}

impl ResourceLimiter for StoreLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            // Growing from nothing is a memory being created at instantiation.
            return Err(match current {
                0 => LimitHit::InitialMemory(desired as u64),
                _ => LimitHit::Memory,
            }
            .into());
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_table_elements {
            return Err(LimitHit::Table.into());
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.max_instances
    }

    fn tables(&self) -> usize {
        self.max_instances
    }

    fn memories(&self) -> usize {
        self.max_instances
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_defaults_are_the_call_defaults() {
        let limits = Limits::default();
        assert_eq!(limits.hook_settings(), HookSettings::default());
        assert_eq!(
            Limits::default().with_hook_settings(&HookSettings::default()),
            limits
        );
    }
}
