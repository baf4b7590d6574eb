//! `write-message`: a postStart hook that writes a message file into a volume.
//!
//! ```text
//! command: ["write-message.wasm", "<file>", "<message words>"...]
//! ```
//!
//! Writes the message words, joined by spaces, plus a newline to `<file>` (like
//! `echo <words> > <file>`), replacing any previous content. The write goes to a temporary
//! file next to it and is renamed into place, so the container never reads half a message.
//! `<file>`'s directory must be a volume mount of the container (or inside one): hooks see no
//! other files.
//!
//! Exit codes: 0 written; 2 missing `<file>` argument; 1 the directory is not visible or the
//! write failed (message on stderr).

use std::fs;
use std::path::Path;

use hooks_sdk::{info, Context, HookError, ResultExt};

fn main() {
    hooks_sdk::main(write_message);
}

fn write_message(ctx: &Context) -> Result<(), HookError> {
    let file = Path::new(ctx.require_param(0, "file to write")?);
    let message = ctx.params()[1..].join(" ");
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = ctx.volume(dir.unwrap_or(Path::new("")))?;
    let name = file
        .file_name()
        .ok_or_else(|| HookError::new(format!("{} names no file", file.display())))?;

    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".wasmhook-tmp");
    let tmp = dir.join(tmp_name);
    fs::write(&tmp, format!("{message}\n"))
        .with_context(|| format!("writing {} (via {})", file.display(), tmp.display()))?;
    fs::rename(&tmp, file).with_context(|| {
        let _ = fs::remove_file(&tmp);
        format!("renaming {} to {}", tmp.display(), file.display())
    })?;
    info!(
        "{} hook of {}/{}: wrote {} bytes to {}",
        ctx.kind(),
        ctx.pod(),
        ctx.container(),
        message.len() + 1,
        file.display()
    );
    Ok(())
}
