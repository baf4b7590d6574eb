//! Guest-side SDK for wasmhook lifecycle hooks.
//!
//! A wasmhook `exec` hook is a WebAssembly module that the engine runs in-process (wasmtime, WASI
//! preview 1 for core modules, preview 2 for components) instead of a process in the container.
//! This crate turns the hook contract (lifecycle-semantics §10) into a few typed helpers. It has
//! no dependencies and builds for `wasm32-wasip1` (the hooks) and natively (its unit tests). The
//! optional feature `http` adds the module `http`, a blocking HTTP client over `wasi:http`
//! 0.2 (one dependency, `wasip2`), for hooks that run as components.
//!
//! # The contract, as seen from the guest
//!
//! | what | how |
//! | --- | --- |
//! | arguments | argv is `exec.command` as written, so `argv[0]` is the module name ([`Context::args`], [`Context::params`]) |
//! | environment | the container's `env` plus `WASMHOOK_POD`, `WASMHOOK_CONTAINER`, `WASMHOOK_HOOK` (`postStart` or `preStop`); the latter win on clashes ([`Context::env`]) |
//! | files | only the container's `volumeMounts`, each preopened at its `mountPath` (read-only if `readOnly`); no image rootfs ([`Context::volume`]) |
//! | network | none unless the pod's `wasmhook.dev/hook-network` policy allows it: `deny` (default), `pod` (only the pod's own addresses), `allow`, or an allow-list of `HOST[:PORT]`/`CIDR[:PORT]` entries; refused connects fail with access-denied / destination-ip-prohibited (`http` feature: `http` module, components only) |
//! | output | stdout and stderr, interleaved in write order, captured into one bounded buffer (default 1 MiB) that ends up in the failure message ([`info!`], [`warn!`], [`error!`]) |
//! | result | returning from `main` is success; a non-zero exit fails the hook ([`main`], [`HookError`]); a panic is a trap, which also fails it |
//! | limits | fuel, a wall-clock timeout and a memory cap per hook; waiting is bounded ([`wait`]) |
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use hooks_sdk::{info, Context, HookError, HookKind, ResultExt};
//!
//! fn main() {
//!     hooks_sdk::main(|ctx: &Context| -> Result<(), HookError> {
//!         let dir = ctx.volume("/data")?;
//!         info!("{} hook of {}/{}", ctx.kind(), ctx.pod(), ctx.container());
//!         if ctx.kind() == HookKind::PreStop {
//!             hooks_sdk::wait::wait_for_file(dir.join("done"), Duration::from_secs(10))?;
//!         }
//!         std::fs::write(dir.join("hook-ran"), "yes\n").context("writing /data/hook-ran")?;
//!         Ok(())
//!     })
//! }
//! ```

mod context;
mod error;
#[cfg(feature = "http")]
pub mod http;
pub mod log;
mod run;
pub mod wait;

pub use context::{Context, HookKind, ENV_CONTAINER, ENV_HOOK, ENV_NAMESPACE, ENV_POD};
pub use error::{HookError, ResultExt, MAX_EXIT_CODE};
pub use run::{main, run};
pub use wait::parse_duration;
