//! Threads a stopped call left behind in a host call that never returns: those opening a
//! FIFO under the call's preopens are let go.
//!
//! wasmtime-wasi runs filesystem host calls on tokio's blocking threads, and opening a FIFO
//! blocks until the other end is opened. Nothing in WASI can interrupt that: when the call
//! is stopped (timeout, cancellation, its future dropped), the thread stays blocked.
//! A container can make a FIFO in its volume, and a hook that opens it at every probe
//! would leave a thread behind each time, until the blocking pool (512 threads) has none
//! left for any hook's file IO on the node.
//!
//! [`release_fifo_opens`] finds the threads of this process blocked in `openat`/`openat2`
//! of a FIFO beneath one of the call's preopened directories (`/proc/self/task/*/syscall`
//! names the system call and its arguments) and opens that FIFO itself, both ends,
//! non-blocking, then closes it: the blocked open returns, the host call ends and its result
//! is dropped.
//!
//! Anyone else blocked opening the same FIFO at that moment (another call, a container
//! process) returns too, to a partner that is already gone, as after any short-lived
//! opener. Other ways a host call can block (a hung network filesystem) are not covered.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};

/// The longest path a blocked open can name (`PATH_MAX`).
const PATH_MAX: usize = 4096;
/// How far up from a blocked open's directory a preopen is looked for.
const MAX_DEPTH: usize = 256;

/// Let go of every thread of this process blocked opening a FIFO beneath one of `roots` (the
/// host directories of a stopped call's preopens, which may be `/proc/self/fd/N` names of
/// directories in a container's mount namespace). Best effort: whatever cannot be read or
/// opened is skipped.
///
/// Directories are told apart by device and inode, not by name: a directory of another
/// mount namespace has no name here.
pub(crate) fn release_fifo_opens<'a>(roots: impl IntoIterator<Item = &'a Path>) {
    let roots: Vec<(u64, u64)> = roots
        .into_iter()
        .filter_map(|r| rustix::fs::stat(r).ok())
        .map(|st| (st.st_dev, st.st_ino))
        .collect();
    if roots.is_empty() {
        return;
    }
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return;
    };
    let mem = File::open("/proc/self/mem").ok();
    for task in tasks.flatten() {
        let Some((dirfd, path_ptr)) = blocked_open(&task.path()) else {
            continue;
        };
        let Some(path) = mem.as_ref().and_then(|m| read_c_string(m, path_ptr)) else {
            continue;
        };
        // The directory the open is relative to. The fd may have been closed and reused
        // since the thread entered the call; the check that it lies beneath a preopen holds
        // whatever it is now.
        let Ok(dir) = rustix::fs::open(
            format!("/proc/self/fd/{dirfd}"),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            continue;
        };
        if beneath_one_of(&dir, &roots) && open_both_ends(&dir, &path) {
            tracing::info!(
                "a stopped hook was blocked opening the FIFO {}: opened it to end that",
                path.display()
            );
        }
    }
}

/// `(dirfd, path pointer)` when the task at `/proc/self/task/<tid>` is in `openat` or
/// `openat2` (both take the directory fd and the path as their first two arguments).
fn blocked_open(task: &Path) -> Option<(i32, u64)> {
    let line = std::fs::read_to_string(task.join("syscall")).ok()?;
    let mut fields = line.split_whitespace();
    let nr: i64 = fields.next()?.parse().ok()?;
    if nr != libc::SYS_openat && nr != libc::SYS_openat2 {
        return None;
    }
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    // The fd is an `int` in a 64-bit register: its low 32 bits (AT_FDCWD is 0xffffff9c).
    let dirfd = hex(fields.next()?)? as u32 as i32;
    let path = hex(fields.next()?)?;
    (dirfd >= 0).then_some((dirfd, path))
}

/// The NUL-terminated string at `addr` in this process's memory, read through
/// `/proc/self/mem` (a failed read, not a fault, where it is not mapped).
fn read_c_string(mem: &File, addr: u64) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    let mut bytes = Vec::new();
    let mut at = addr;
    while bytes.len() < PATH_MAX {
        // Up to the end of the page, so a read never crosses into an unmapped one.
        let mut chunk = vec![0u8; (4096 - (at % 4096)) as usize];
        let n = mem.read_at(&mut chunk, at).ok().filter(|&n| n > 0)?;
        if let Some(end) = chunk[..n].iter().position(|&b| b == 0) {
            bytes.extend_from_slice(&chunk[..end]);
            return Some(std::ffi::OsString::from_vec(bytes).into());
        }
        bytes.extend_from_slice(&chunk[..n]);
        at += n as u64;
    }
    None
}

/// Whether `dir` is one of `roots` or lies beneath one, following `..` up.
fn beneath_one_of(dir: &OwnedFd, roots: &[(u64, u64)]) -> bool {
    let id = |fd: &OwnedFd| rustix::fs::fstat(fd).ok().map(|st| (st.st_dev, st.st_ino));
    let Some(mut here) = id(dir) else {
        return false;
    };
    let mut cur = None::<OwnedFd>;
    for _ in 0..MAX_DEPTH {
        if roots.contains(&here) {
            return true;
        }
        let at = cur.as_ref().map_or(dir.as_fd(), |c| c.as_fd());
        let Ok(parent) = rustix::fs::openat(
            at,
            "..",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            return false;
        };
        match id(&parent) {
            // `..` of the top is the top itself.
            Some(up) if up != here => here = up,
            _ => return false,
        }
        cur = Some(parent);
    }
    false
}

/// Open `path` beneath `dir` as the blocked open reached it; if it is a FIFO, open a reader
/// and a writer on it, non-blocking, and close them. Resolved beneath `dir` (the container
/// owns what is under it: a symlink to the host's `/` still resolves inside), and with
/// `O_PATH` first, which neither blocks on a FIFO nor has a device's side effects; the file
/// type is checked on it.
fn open_both_ends(dir: &OwnedFd, path: &Path) -> bool {
    let Ok(file) = rustix::fs::openat2(
        dir,
        path,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
    ) else {
        return false;
    };
    match rustix::fs::fstat(&file) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Fifo => {}
        _ => return false,
    }
    // Reopened through its O_PATH fd: the same FIFO, whatever its name is now.
    let by_fd = format!("/proc/self/fd/{}", file.as_raw_fd());
    let end = |write: bool| {
        OpenOptions::new()
            .read(!write)
            .write(write)
            .custom_flags(libc::O_NONBLOCK)
            .open(&by_fd)
    };
    // The reader first: a non-blocking writer needs one to exist.
    let reader = end(false);
    let writer = end(true);
    reader.is_ok() && writer.is_ok()
}
