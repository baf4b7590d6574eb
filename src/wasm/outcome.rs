//! How a hook call ended: the status, the output and what the guest was refused, and the one
//! place a wasmtime error becomes a status.

use std::fmt;
use std::time::Duration;

use wasmtime::{Trap, WasmBacktrace};
use wasmtime_wasi::I32Exit;

use super::limits::{LimitHit, Limits};
use super::output::CapturedOutput;

/// How a hook call ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecStatus {
    Success,
    /// `proc_exit(n)` with `n != 0` (a preview 2 command returning `err` counts as 1).
    Exited(i32),
    /// A typed hook returned `err(message)`.
    Failed(String),
    TimedOut(Duration),
    FuelExhausted(u64),
    MemoryLimit(u64),
    /// The module needs more memory to start (its memories' initial size) than the limit:
    /// the limit is too low for this module, whatever it does.
    MemoryTooSmall {
        limit: u64,
        needed: u64,
    },
    TableLimit(u64),
    /// A wasm trap, with the wasm backtrace when there is one.
    Trap(String),
    Cancelled,
    /// The call could not start (instantiation or WASI set-up failed).
    Error(String),
}

impl ExecStatus {
    /// Short machine-readable name, used in JSON output.
    pub fn name(&self) -> &'static str {
        match self {
            ExecStatus::Success => "success",
            ExecStatus::Exited(_) => "exited",
            ExecStatus::Failed(_) => "failed",
            ExecStatus::TimedOut(_) => "timeout",
            ExecStatus::FuelExhausted(_) => "fuel-exhausted",
            ExecStatus::MemoryLimit(_) | ExecStatus::MemoryTooSmall { .. } => "memory-limit",
            ExecStatus::TableLimit(_) => "table-limit",
            ExecStatus::Trap(_) => "trap",
            ExecStatus::Cancelled => "cancelled",
            ExecStatus::Error(_) => "error",
        }
    }
}

impl fmt::Display for ExecStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExecStatus::Success => f.write_str("succeeded"),
            ExecStatus::Exited(n) => write!(f, "exited with code {n}"),
            ExecStatus::Failed(msg) => f.write_str(msg),
            ExecStatus::TimedOut(d) => {
                write!(f, "timed out after {}", humantime::format_duration(*d))
            }
            ExecStatus::FuelExhausted(budget) => write!(f, "fuel exhausted (budget {budget})"),
            ExecStatus::MemoryLimit(bytes) => {
                write!(f, "memory limit of {} exceeded", format_bytes(*bytes))
            }
            ExecStatus::MemoryTooSmall { limit, needed } => write!(
                f,
                "memory limit of {} is below the {} this module needs to start: raise \
                 wasmhook.dev/hook-max-memory (or --max-memory)",
                format_bytes(*limit),
                format_size(*needed)
            ),
            ExecStatus::TableLimit(n) => write!(f, "table limit of {n} elements exceeded"),
            ExecStatus::Trap(msg) => write!(f, "trap: {msg}"),
            ExecStatus::Cancelled => f.write_str("cancelled"),
            ExecStatus::Error(msg) => write!(f, "cannot run: {msg}"),
        }
    }
}

/// A size for people: exact units when they divide, else MiB with one decimal.
fn format_size(n: u64) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) != 0 => {
            format!("{:.1} MiB", n as f64 / f64::from(1 << 20))
        }
        n => format_bytes(n),
    }
}

fn format_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 && n % (1 << 30) == 0 => format!("{} GiB", n >> 30),
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

/// Everything about a finished call.
#[derive(Clone, Debug)]
pub struct ExecOutcome {
    pub status: ExecStatus,
    pub output: CapturedOutput,
    pub duration: Duration,
    /// Fuel consumed, when the call was metered.
    pub fuel_used: Option<u64>,
    /// What the network policy refused the hook, one line each (`tcp connect to
    /// 10.0.0.1:80`, `name lookup of example.com`), in order, at most 16.
    pub network_refused: Vec<String>,
}

impl ExecOutcome {
    pub fn is_success(&self) -> bool {
        self.status == ExecStatus::Success
    }

    /// The exit code a process would have had: 0, `n` for `proc_exit(n)`, 1 for a failed
    /// typed hook, `None` when the hook was stopped, trapped or could not start.
    /// Exhaustive, without a wildcard arm: a new [`ExecStatus`] must choose here.
    pub fn exit_code(&self) -> Option<i32> {
        match self.status {
            ExecStatus::Success => Some(0),
            ExecStatus::Exited(n) => Some(n),
            ExecStatus::Failed(_) => Some(1),
            ExecStatus::TimedOut(_)
            | ExecStatus::FuelExhausted(_)
            | ExecStatus::MemoryLimit(_)
            | ExecStatus::MemoryTooSmall { .. }
            | ExecStatus::TableLimit(_)
            | ExecStatus::Trap(_)
            | ExecStatus::Cancelled
            | ExecStatus::Error(_) => None,
        }
    }

    /// stderr as a process's would read, then wasmhook's notes, one `wasmhook: <note>` line
    /// each: every network refusal (`network policy refused <what>`), then `note` (why the
    /// call ended, when a process could not have said so itself).
    pub fn stderr_with_notes(&self, note: Option<String>) -> Vec<u8> {
        let mut stderr = self.output.stderr.clone();
        let refusals = self
            .network_refused
            .iter()
            .map(|r| format!("network policy refused {r}"));
        for note in refusals.chain(note) {
            if !stderr.is_empty() && !stderr.ends_with(b"\n") {
                stderr.push(b'\n');
            }
            stderr.extend_from_slice(format!("wasmhook: {note}\n").as_bytes());
        }
        stderr
    }

    /// Whether output was dropped at the cap.
    pub fn truncated(&self) -> bool {
        self.output.dropped > 0
    }

    /// The combined output, with a marker line when bytes were dropped and one per network
    /// refusal.
    pub fn output_with_marker(&self) -> Vec<u8> {
        let mut out = self.output.combined.clone();
        for refused in &self.network_refused {
            if !out.is_empty() && !out.ends_with(b"\n") {
                out.push(b'\n');
            }
            out.extend_from_slice(
                format!("[wasmhook: network policy refused {refused}]\n").as_bytes(),
            );
        }
        if self.output.dropped > 0 {
            out.extend_from_slice(
                format!(
                    "\n[wasmhook: output truncated, {} bytes dropped]\n",
                    self.output.dropped
                )
                .as_bytes(),
            );
        }
        out
    }
}

/// The error our epoch callback raises at the deadline.
#[derive(Debug, thiserror::Error)]
#[error("hook deadline reached")]
pub(super) struct DeadlineReached;

/// Turn the error of an instantiation or call into a status.
pub(super) fn classify(e: wasmtime::Error, limits: &Limits) -> ExecStatus {
    if let Some(exit) = e.downcast_ref::<I32Exit>() {
        return match exit.0 {
            0 => ExecStatus::Success,
            n => ExecStatus::Exited(n),
        };
    }
    if e.downcast_ref::<DeadlineReached>().is_some() {
        return ExecStatus::TimedOut(limits.timeout);
    }
    match e.downcast_ref::<LimitHit>() {
        Some(LimitHit::Memory) => return ExecStatus::MemoryLimit(limits.max_memory),
        Some(LimitHit::InitialMemory(needed)) => {
            return ExecStatus::MemoryTooSmall {
                limit: limits.max_memory,
                needed: *needed,
            }
        }
        Some(LimitHit::Table) => return ExecStatus::TableLimit(limits.max_table_elements),
        None => {}
    }
    if let Some(Trap::OutOfFuel) = e.downcast_ref::<Trap>() {
        return ExecStatus::FuelExhausted(limits.fuel.unwrap_or(0));
    }
    let mut msg = e.root_cause().to_string();
    if let Some(bt) = e.downcast_ref::<WasmBacktrace>() {
        let bt = bt.to_string();
        if !bt.trim().is_empty() {
            msg.push('\n');
            msg.push_str(bt.trim_end());
        }
    }
    ExecStatus::Trap(msg)
}
