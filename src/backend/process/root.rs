//! A process container's root directory (see "How a container finds its volumes" in the
//! module docs of [`super`]): mount symlinks, working-directory translation, resolving
//! `argv[0]` like `execvp`, and deleting what containers leave behind.

use std::path::{Component, Path, PathBuf};

use crate::backend::Mount;

/// A mount's symlink inside the container root: relative path → host path.
pub(super) type Link = (PathBuf, PathBuf);

pub(super) fn plan_mounts(mounts: &[Mount]) -> std::result::Result<Vec<Link>, String> {
    let mut links: Vec<Link> = Vec::new();
    for m in mounts {
        let cp = &m.container_path;
        if !cp.is_absolute() {
            return Err(format!("mount path \"{}\" is not absolute", cp.display()));
        }
        let mut rel = PathBuf::new();
        for c in cp.components() {
            match c {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(n) => rel.push(n),
                Component::ParentDir | Component::Prefix(_) => {
                    return Err(format!(
                        "mount path \"{}\" must not contain \"..\"",
                        cp.display()
                    ))
                }
            }
        }
        if rel.as_os_str().is_empty() {
            return Err("mount path \"/\" is not supported by the process backend".into());
        }
        if !m.host_path.exists() {
            return Err(format!(
                "mount source \"{}\" for \"{}\" does not exist",
                m.host_path.display(),
                cp.display()
            ));
        }
        let host = std::path::absolute(&m.host_path).map_err(|e| e.to_string())?;
        for (other, _) in &links {
            if *other == rel {
                return Err(format!("duplicate mount path \"{}\"", cp.display()));
            }
            if rel.starts_with(other) || other.starts_with(&rel) {
                return Err(format!(
                    "mount paths \"/{}\" and \"/{}\" are nested, which the process backend \
                     cannot represent",
                    other.display(),
                    rel.display()
                ));
            }
        }
        links.push((rel, host));
    }
    Ok(links)
}

pub(super) fn make_root(root: &Path, links: &[Link]) -> std::result::Result<(), String> {
    std::fs::create_dir_all(root)
        .map_err(|e| format!("creating container root {}: {e}", root.display()))?;
    for (rel, host) in links {
        let link = root.join(rel);
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("creating {}: {e}", parent.display()))?;
        }
        std::os::unix::fs::symlink(host, &link)
            .map_err(|e| format!("linking {} to {}: {e}", link.display(), host.display()))?;
    }
    Ok(())
}

/// A container path under a mount becomes the host path inside the volume; any other path
/// is a host path as is.
pub(super) fn translate_path(p: &Path, mounts: &[Mount]) -> PathBuf {
    mounts
        .iter()
        .filter_map(|m| {
            p.strip_prefix(&m.container_path).ok().map(|rest| {
                (
                    m.container_path.components().count(),
                    m.host_path.join(rest),
                )
            })
        })
        .max_by_key(|(depth, _)| *depth)
        .map(|(_, host)| host)
        .unwrap_or_else(|| p.to_path_buf())
}

/// Resolve `arg0` like `execvp`: a name through `search` (a `PATH` value), a path with a
/// slash against `cwd`. Messages follow runc's.
pub(super) fn resolve_program(
    arg0: &str,
    search: &str,
    cwd: &Path,
) -> std::result::Result<PathBuf, String> {
    if arg0.contains('/') {
        let p = cwd.join(arg0);
        return match std::fs::metadata(&p) {
            Err(e) => Err(format!(
                "unable to start container process: exec: \"{arg0}\": stat {}: {}",
                p.display(),
                io_reason(&e)
            )),
            Ok(_) if !is_executable(&p) => Err(format!(
                "unable to start container process: exec: \"{arg0}\": permission denied"
            )),
            Ok(_) => Ok(p),
        };
    }
    for dir in search.split(':').filter(|d| !d.is_empty()) {
        let candidate = cwd.join(dir).join(arg0);
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    Err(format!(
        "unable to start container process: exec: \"{arg0}\": executable file not found in $PATH"
    ))
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file())
        && rustix::fs::access(p, rustix::fs::Access::EXEC_OK).is_ok()
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

pub(super) async fn remove_dir_blocking(dir: PathBuf) {
    let shown = dir.display().to_string();
    match tokio::task::spawn_blocking(move || force_remove_dir_all(&dir)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("removing {shown}: {e}"),
        Err(e) => tracing::warn!("removing {shown}: {e}"),
    }
}

/// `remove_dir_all` that also copes with directories a container made unwritable, and
/// with a directory that is already gone. Never follows symlinks.
pub(super) fn force_remove_dir_all(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    make_writable(dir);
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    let mode = meta.permissions().mode();
    if mode & 0o700 != 0o700 {
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o700));
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                make_writable(&e.path());
            }
        }
    }
}
