//! `typed`: a typed hook, a component exporting `wasmhook:hook/handler@0.1.0` (`wit/hook.wit`).
//!
//! Instead of argv and environment variables it gets the context as a record and returns
//! `result<_, string>`. Built as a wasm32-wasip1 reactor (`cdylib`) and turned into a component
//! with the WASI reactor adapter (see `scripts/build-hooks.sh`).
//!
//! ```text
//! command: ["typed.component.wasm"]                 -> ok
//! command: ["typed.component.wasm", "fail", "why"...] -> err("asked to fail: why ...")
//! ```
//!
//! On success it writes `<container> <kind>\n` (kind = `postStart`/`preStop`) to
//! `typed-hook.txt` in the first volume that is not read-only, and prints a summary of the
//! context on stdout. It returns `err` if asked to, or if there is no writable volume or the
//! write fails.

use std::fs;
use std::path::Path;

use hooks_sdk::{info, HookError, ResultExt};

wit_bindgen::generate!({
    path: "../../../wit/hook.wit",
    world: "hook",
});

use exports::wasmhook::hook::handler::Guest;
use wasmhook::hook::types::{Context, HookKind};

/// The file written into the first writable volume.
pub const OUTPUT_FILE: &str = "typed-hook.txt";

struct Hook;

impl Guest for Hook {
    fn run(ctx: Context) -> Result<(), String> {
        run(&ctx).map_err(|e| e.to_string())
    }
}

export!(Hook);

fn kind_str(kind: HookKind) -> &'static str {
    match kind {
        HookKind::PostStart => hooks_sdk::HookKind::PostStart.as_str(),
        HookKind::PreStop => hooks_sdk::HookKind::PreStop.as_str(),
    }
}

fn run(ctx: &Context) -> Result<(), HookError> {
    let kind = kind_str(ctx.kind);
    info!(
        "typed {kind} hook: pod {}/{} (uid {}), container {}, {} args, {} env vars, {} volumes",
        ctx.namespace,
        ctx.pod,
        ctx.uid,
        ctx.container,
        ctx.args.len(),
        ctx.env.len(),
        ctx.volumes.len()
    );
    if ctx.args.get(1).map(String::as_str) == Some("fail") {
        let why = ctx.args[2..].join(" ");
        return Err(HookError::new(format!("asked to fail: {why}")));
    }
    let volume = ctx.volumes.iter().find(|v| !v.read_only).ok_or_else(|| {
        HookError::new(format!(
            "no writable volume among {} (need a volumeMount without readOnly)",
            ctx.volumes.len()
        ))
    })?;
    let file = Path::new(&volume.path).join(OUTPUT_FILE);
    fs::write(&file, format!("{} {kind}\n", ctx.container))
        .with_context(|| format!("writing {} (volume {})", file.display(), volume.name))?;
    info!("wrote {}", file.display());
    Ok(())
}
