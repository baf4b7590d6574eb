//! Per-call limits and the store limiter that enforces the memory and table caps.

use std::time::Duration;

use serde::Serialize;
use wasmtime::ResourceLimiter;

/// Limits of one hook call. Every field has a finite default: no call is unbounded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Wall-clock bound of the whole call, blocking host calls included.
    pub timeout: Duration,
    /// Instruction budget; `None` runs without fuel metering.
    pub fuel: Option<u64>,
    /// Cap of each linear memory, in bytes.
    pub max_memory: u64,
    /// Cap of each table, in elements.
    pub max_table_elements: u64,
    /// Instances, memories and tables one call may create (a component counts each core
    /// instance of its adapter too).
    pub max_instances: usize,
    /// Captured output (stdout + stderr) kept, in bytes; the rest is counted and dropped.
    pub max_output: usize,
    /// Give the hook WASI sockets (preview 2 components only; preview 1 has no sockets).
    pub allow_network: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(30),
            fuel: None,
            max_memory: 64 << 20,
            max_table_elements: 10_000,
            max_instances: 32,
            max_output: 1 << 20,
            allow_network: false,
        }
    }
}

/// Which cap a hook ran into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LimitHit {
    #[error("memory limit exceeded")]
    Memory,
    #[error("table limit exceeded")]
    Table,
}

/// Enforces [`Limits`] inside a store. Growing past a cap traps with a [`LimitHit`] error (rather
/// than returning -1 from `memory.grow`), so a memory bomb stops at once with a clear reason.
pub(crate) struct StoreLimiter {
    max_memory: usize,
    max_table_elements: usize,
    max_instances: usize,
}

impl StoreLimiter {
    pub(crate) fn new(limits: &Limits) -> Self {
        StoreLimiter {
            max_memory: usize::try_from(limits.max_memory).unwrap_or(usize::MAX),
            max_table_elements: usize::try_from(limits.max_table_elements).unwrap_or(usize::MAX),
            max_instances: limits.max_instances,
        }
    }
}

impl ResourceLimiter for StoreLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            return Err(LimitHit::Memory.into());
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
