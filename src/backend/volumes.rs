//! A sandbox's volumes, made the same way in every backend:
//! - names are single path components ([`check_name`]) and unique in the pod;
//! - `emptyDir` volume `<name>` is the directory `<sandbox dir>/volumes/<name>`, created
//!   here and deleted with the sandbox directory;
//! - `hostPath` volumes are the host path as is (made absolute), which must exist
//!   ([`ErrorKind::NotFound`](super::ErrorKind::NotFound) otherwise); never created or
//!   deleted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{BackendError, Result, VolumeSource, VolumeSpec};

/// The host directory of every volume of `specs`, by name, for a sandbox in `sandbox_dir`.
pub(super) fn make(sandbox_dir: &Path, specs: &[VolumeSpec]) -> Result<BTreeMap<String, PathBuf>> {
    let mut volumes = BTreeMap::new();
    for v in specs {
        check_name("volume", &v.name)?;
        if volumes.contains_key(&v.name) {
            return Err(BackendError::already_exists(format!(
                "duplicate volume name \"{}\"",
                v.name
            )));
        }
        let host = match &v.source {
            VolumeSource::EmptyDir => {
                let p = sandbox_dir.join("volumes").join(&v.name);
                std::fs::create_dir_all(&p).map_err(|e| {
                    BackendError::other(format!(
                        "emptyDir volume \"{}\": creating {}: {e}",
                        v.name,
                        p.display()
                    ))
                })?;
                p
            }
            VolumeSource::HostPath(p) => {
                let abs = std::path::absolute(p).map_err(|e| {
                    BackendError::other(format!(
                        "hostPath volume \"{}\": {}: {e}",
                        v.name,
                        p.display()
                    ))
                })?;
                match std::fs::metadata(&abs) {
                    Ok(_) => abs,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(BackendError::not_found(format!(
                            "hostPath volume \"{}\": path \"{}\" does not exist",
                            v.name,
                            p.display()
                        )))
                    }
                    Err(e) => {
                        return Err(BackendError::other(format!(
                            "hostPath volume \"{}\": path \"{}\": {e}",
                            v.name,
                            p.display()
                        )))
                    }
                }
            }
        };
        volumes.insert(v.name.clone(), host);
    }
    Ok(volumes)
}

/// Reject a name that cannot be one path component (empty, `.`, `..`, `/` or NUL).
fn check_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(BackendError::other(format!("invalid {what} name {name:?}")));
    }
    Ok(())
}
