//! Which wasmhook process owns a sandbox, so state left by a SIGKILLed wasmhook can be
//! swept at the next start (as containerd cleans up after a crash).
//!
//! A sandbox directory holds an `owner` file: `<pid> <start time>`, the start time being
//! field 22 of `/proc/<pid>/stat` (clock ticks since boot), so a recycled pid is not taken
//! for the owner. The owner is gone when `/proc/<pid>/stat` is missing, names another start
//! time, or shows a zombie. A directory without a readable owner file is never swept: we
//! cannot prove it is ours and dead.

use std::path::Path;

/// The file name inside a sandbox directory.
pub(crate) const OWNER_FILE: &str = "owner";

/// `(pid, start time)` of a process, from `/proc/<pid>/stat`; `None` if it is gone or a
/// zombie.
fn proc_identity(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `comm` (field 2) may hold spaces and parentheses: the fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); field 22 (starttime) is fields[19].
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// The contents of an owner file naming this process.
pub(crate) fn current() -> String {
    let pid = std::process::id();
    let start = proc_identity(pid).unwrap_or(0);
    format!("{pid} {start}\n")
}

/// Write the owner file naming this process into `dir`.
pub(crate) fn write(dir: &Path) -> std::io::Result<()> {
    std::fs::write(dir.join(OWNER_FILE), current())
}

/// `Some(description)` when `dir` has an owner file whose process is gone (the directory is
/// stale); `None` when the owner lives or when there is no readable owner file.
pub(crate) fn stale(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(OWNER_FILE)).ok()?;
    let mut it = text.split_whitespace();
    let pid: u32 = it.next()?.parse().ok()?;
    let start: u64 = it.next()?.parse().ok()?;
    match proc_identity(pid) {
        Some(s) if s == start => None,
        Some(_) => Some(format!("owner pid {pid} was recycled")),
        None => Some(format!("owner pid {pid} is gone")),
    }
}

/// The subdirectories of `parent` whose names start with `prefix` and that are stale,
/// with why. Symlinks are never followed.
pub(crate) fn stale_dirs(parent: &Path, prefix: &str) -> Vec<(std::path::PathBuf, String)> {
    let Ok(rd) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let p = e.path();
            stale(&p).map(|why| (p, why))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_process_is_alive_and_a_dead_one_is_stale() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(stale(d.path()), None, "no owner file: never stale");
        write(d.path()).unwrap();
        assert_eq!(stale(d.path()), None);
        let pid = std::process::id();
        std::fs::write(d.path().join(OWNER_FILE), format!("{pid} 1\n")).unwrap();
        assert!(
            stale(d.path()).is_some(),
            "another start time: recycled pid"
        );
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let dead = c.id();
        c.wait().unwrap();
        std::fs::write(d.path().join(OWNER_FILE), format!("{dead} 1\n")).unwrap();
        assert!(stale(d.path()).is_some());
    }
}
