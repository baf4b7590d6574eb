//! Helpers shared by the integration tests that drive whole pods.
// Each test binary uses a different subset of these.
#![allow(dead_code)]

pub mod containerd;
pub mod cri;
pub mod registry;
pub mod run;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A per-test scratch directory, removed on drop. Its name carries `tag` (anything but
/// letters and digits becomes `-`, so a tag such as `write ../outside` names one directory,
/// not a path), the test process and a counter, so parallel tests never share one.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let tag: String = tag
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let dir = std::env::temp_dir().join(format!(
            "wasmhook-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A subdirectory, created.
    pub fn sub(&self, name: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::create_dir_all(&p).expect("create subdir");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The hook target the handler and probe tests use: container `app` of pod
/// `web_default(uid-1)` at `pod_ip`, with one named port `http` (1), no env, mounts or netns.
pub fn web_app_target(pod_ip: std::net::IpAddr) -> wasmhook::handlers::HookTarget {
    wasmhook::handlers::HookTarget {
        pod: wasmhook::events::PodRef {
            name: "web".into(),
            namespace: "default".into(),
            uid: "uid-1".into(),
        },
        container: "app".into(),
        kind: wasmhook::hook::HookKind::PostStart,
        pod_ip,
        netns: None,
        instance: None,
        ports: vec![("http".into(), 1)],
        env: vec![],
        mounts: vec![],
    }
}
