//! Finding `cmd[0]` inside a container the way runc's exec would, without leaving the
//! container's root, and telling a wasm module from anything else. Both fronts use it: the
//! CRI proxy for `ExecSync`, the engine for exec hooks and probes on OCI backends.
//!
//! Every path is opened with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` relative to
//! a directory fd on `/proc/<pid>/root`: `..` and absolute symlinks resolve inside the
//! container as they do for the container's own processes (a symlink in the image pointing at
//! `/etc/shadow` opens the *container's* `/etc/shadow`), and `/proc/<pid>/...` magic links
//! are refused. A plain path join would follow an absolute symlink to the host.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;

use rustix::fs::{Mode, OFlags, ResolveFlags};

/// runc's default `PATH` when the container's environment has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Open `path` inside the root `root` (a directory fd). Relative paths are taken from the
/// root; `flags` add to `O_CLOEXEC | O_NOCTTY`.
pub fn open_in_root(root: &OwnedFd, path: &str, flags: OFlags) -> io::Result<OwnedFd> {
    let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    let path = if path.is_empty() { "." } else { path };
    // openat2 refuses O_PATH with any flag but O_DIRECTORY, O_NOFOLLOW and O_CLOEXEC.
    let extra = if flags.contains(OFlags::PATH) {
        OFlags::CLOEXEC
    } else {
        OFlags::CLOEXEC | OFlags::NOCTTY
    };
    Ok(rustix::fs::openat2(
        root.as_fd(),
        path,
        flags | extra,
        Mode::empty(),
        resolve,
    )?)
}

/// A command file found in the container: its path there and an open fd.
#[derive(Debug)]
pub struct Found {
    pub path: String,
    pub file: File,
}

/// Find `cmd0` as runc does: a name with a `/` is a path (absolute, or relative to `cwd`);
/// a bare name is searched on `path_var` (the container's `PATH`). Only regular files count.
/// Unlike `execve`, the execute bit is not required: a module is data to us.
pub fn find_command(
    root: &OwnedFd,
    cmd0: &str,
    cwd: &str,
    path_var: Option<&str>,
) -> io::Result<Found> {
    if cmd0.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty command"));
    }
    if cmd0.contains('/') {
        let path = if cmd0.starts_with('/') {
            cmd0.to_string()
        } else {
            format!("{}/{cmd0}", cwd.trim_end_matches('/'))
        };
        return open_regular(root, &path).map(|file| Found { path, file });
    }
    for dir in path_var.unwrap_or(DEFAULT_PATH).split(':') {
        // An empty PATH entry means the working directory, as in execvp.
        let dir = if dir.is_empty() { cwd } else { dir };
        let path = format!("{}/{cmd0}", dir.trim_end_matches('/'));
        if let Ok(file) = open_regular(root, &path) {
            return Ok(Found { path, file });
        }
    }
    Err(io::Error::from(io::ErrorKind::NotFound))
}

fn open_regular(root: &OwnedFd, path: &str) -> io::Result<File> {
    let fd = open_in_root(root, path, OFlags::RDONLY)?;
    let file = File::from(fd);
    if !file.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    Ok(file)
}

/// What a command file is, from its first bytes and its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandKind {
    /// A wasm binary (core module or component): `\0asm`.
    Wasm,
    /// WebAssembly text, by its `.wat` name.
    Wat,
    /// Anything else: a native program, a script, a precompiled `.cwasm` (never loaded from
    /// a container: deserializing it would run the container's machine code in the proxy).
    Other,
}

/// Tell the kind of `file` (reads at most 4 bytes at offset 0, without moving the file's
/// offset: the module is read from the same fd later).
pub fn command_kind(file: &File, path: &str) -> io::Result<CommandKind> {
    let mut magic = [0u8; 4];
    let mut n = 0;
    while n < 4 {
        match file.read_at(&mut magic[n..], n as u64)? {
            0 => break,
            k => n += k,
        }
    }
    Ok(if n == 4 && &magic == b"\0asm" {
        CommandKind::Wasm
    } else if path.ends_with(".wat") {
        CommandKind::Wat
    } else {
        CommandKind::Other
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn root(dir: &std::path::Path) -> OwnedFd {
        rustix::fs::open(dir, OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty()).unwrap()
    }

    #[test]
    fn absolute_symlinks_and_dotdot_stay_inside_the_root() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.wasm"), b"\0asm\x01\0\0\0").unwrap();
        let inside = tempfile::tempdir().unwrap();
        let r = inside.path();
        std::fs::create_dir_all(r.join("hooks")).unwrap();
        std::fs::create_dir_all(r.join("data")).unwrap();
        std::fs::write(r.join("data/real.wasm"), b"\0asm\x01\0\0\0").unwrap();
        // Absolute links resolve against the container root, not the host's.
        symlink("/data/real.wasm", r.join("hooks/in.wasm")).unwrap();
        symlink(outside.path().join("secret.wasm"), r.join("hooks/out.wasm")).unwrap();
        symlink("../../../../../../../..", r.join("hooks/up")).unwrap();
        let fd = root(r);

        let found = find_command(&fd, "/hooks/in.wasm", "/", None).unwrap();
        assert_eq!(
            command_kind(&found.file, &found.path).unwrap(),
            CommandKind::Wasm
        );
        let err = find_command(&fd, "/hooks/out.wasm", "/", None).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
        // `..` past the root stays at the root: /hooks/up/data/real.wasm is /data/real.wasm.
        assert!(find_command(&fd, "/hooks/up/data/real.wasm", "/", None).is_ok());
        let escaped = format!("/hooks/up{}", outside.path().join("secret.wasm").display());
        assert!(find_command(&fd, &escaped, "/", None).is_err());
    }

    #[test]
    fn bare_names_use_path_and_relative_paths_the_working_directory() {
        let r = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(r.path().join("opt/hooks")).unwrap();
        std::fs::create_dir_all(r.path().join("work")).unwrap();
        std::fs::write(r.path().join("opt/hooks/probe.wasm"), b"\0asm").unwrap();
        std::fs::write(r.path().join("work/rel.wat"), b"(module)").unwrap();
        std::fs::create_dir_all(r.path().join("bin/dir.wasm")).unwrap();
        let fd = root(r.path());
        let f = find_command(&fd, "probe.wasm", "/", Some("/bin:/opt/hooks")).unwrap();
        assert_eq!(f.path, "/opt/hooks/probe.wasm");
        assert!(find_command(&fd, "probe.wasm", "/", None).is_err());
        let f = find_command(&fd, "./rel.wat", "/work", None).unwrap();
        assert_eq!(command_kind(&f.file, &f.path).unwrap(), CommandKind::Wat);
        // Mount points are opened as O_PATH directories for preopens.
        assert!(open_in_root(&fd, "/work", OFlags::PATH | OFlags::DIRECTORY).is_ok());
        // Directories are not commands, even on PATH.
        assert!(find_command(&fd, "dir.wasm", "/", Some("/bin")).is_err());
        assert!(find_command(&fd, "", "/", None).is_err());
    }
}
