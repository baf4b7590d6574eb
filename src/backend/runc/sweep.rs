//! Sweeping what a SIGKILLed wasmhook left (see "Removal" in the module docs of
//! [`super`]): its containers, rootfs mounts, network namespaces and sandbox directories.

use std::path::PathBuf;

use super::{netns, RuncBackend};
use crate::backend::{owner, ErrorKind};

impl RuncBackend {
    /// Tear down the sandboxes under `<state_dir>/sandboxes` whose owner process is gone
    /// (left by a SIGKILLed wasmhook; see the module docs): `runc delete --force` each of
    /// their containers, unmount the rootfs, delete the netns and the directory.
    pub(super) async fn sweep(&self) {
        let parent = self.state_dir.join("sandboxes");
        for (dir, why) in owner::stale_dirs(&parent, "") {
            let id = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let bundles: Vec<PathBuf> = std::fs::read_dir(dir.join("containers"))
                .map(|rd| rd.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            for bundle in bundles {
                let Some(cid) = bundle.file_name().map(|n| n.to_string_lossy().into_owned()) else {
                    continue;
                };
                match self.run_runc(&["delete", "--force", &cid]).await {
                    Err(e) if e.kind() != ErrorKind::NotFound => {
                        tracing::warn!("sweep: runc delete {cid}: {e}")
                    }
                    _ => {}
                }
                // Not mounted (a copied rootfs, or already gone) is fine.
                let _ = rustix::mount::unmount(
                    bundle.join("rootfs"),
                    rustix::mount::UnmountFlags::DETACH,
                );
            }
            let netns = netns::name(&id);
            if netns::path(&netns).exists() {
                let _ = netns::delete(&netns).await;
            }
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => tracing::info!("swept stale sandbox {} ({why})", dir.display()),
                Err(e) => tracing::warn!("sweeping stale sandbox {}: {e}", dir.display()),
            }
        }
    }
}
