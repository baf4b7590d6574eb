//! wasmhook: Kubernetes container lifecycle hooks whose `exec` handlers are sandboxed
//! WebAssembly modules.
//!
//! The crate is a library first; the `wasmhook` binary is a thin CLI on top of it.
//! See `ARCHITECTURE.md` for the map. In short:
//!
//! - [`manifest`]: Pod manifests in (YAML/JSON), Kubernetes defaults and validation out.
//! - [`hook`]: the hook types every layer shares (kind, settings); a leaf.
//! - [`wasm`]: the WebAssembly hook runtime (wasmtime + WASI), with fuel, time and memory limits.
//! - [`handlers`]: running one lifecycle handler (`exec` through [`wasm`], `httpGet`,
//!   `tcpSocket`, `sleep` in the host).
//! - [`probe`]: running one startup, liveness or readiness probe (same handlers, the
//!   prober's rules).
//! - [`backend`]: the trait the engine drives containers through, and its implementations.
//! - [`engine`]: the lifecycle engine: start order, hooks, grace periods, restarts.
//! - [`grpc`]: gRPC wire helpers (framing, status, unary calls) for the CRI front and grpc
//!   probes; a leaf.
//! - [`events`]: Kubernetes-style events and their text/JSON rendering.
//! - [`cli`]: the `wasmhook` command line.

pub mod backend;
pub mod cli;
pub mod cri;
pub mod engine;
pub mod events;
pub mod grpc;
pub mod handlers;
pub mod hook;
pub mod manifest;
pub mod probe;
pub mod wasm;

/// Lock a mutex, ignoring poisoning. Every mutex in the crate guards data that a panicking
/// holder cannot leave half-updated (plain inserts, removals and assignments), so the data
/// is still good and one panicked task must not take the whole engine down with it.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The Kubernetes version whose behaviour wasmhook follows (used e.g. in the
/// `User-Agent: kube-lifecycle/<major>.<minor>` header of httpGet hooks).
pub const KUBERNETES_VERSION: (u32, u32) = (1, 34);
