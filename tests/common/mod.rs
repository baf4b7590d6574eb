//! Helpers shared by the integration tests that drive whole pods.
// Each test binary uses a different subset of these.
#![allow(dead_code, unused_imports)]

pub mod containerd;
pub mod cri;
pub mod registry;
pub mod run;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Whether a test that needs real services of this machine can run; `problem` says why not
/// (`None`: it can). Unless one of `require` is set (CI sets them: `.ci/run`), a problem skips
/// the test with a line on stderr; with one set, it fails the test, so CI never passes by
/// skipping. `require[0]` is the variable the skip message suggests.
pub fn can_run(what: &str, require: &[&str], problem: Option<String>) -> bool {
    let set: Vec<&str> = require
        .iter()
        .copied()
        .filter(|v| std::env::var_os(v).is_some_and(|v| v != "0"))
        .collect();
    match problem {
        None => true,
        Some(p) if !set.is_empty() => panic!("{} is set but: {p}", set.join(" and ")),
        Some(p) => {
            eprintln!(
                "\n*** SKIPPED {what}: {p} (set {}=1 to fail instead) ***\n",
                require[0]
            );
            false
        }
    }
}

/// What keeps runc containers from running here, if anything: root and `runc`, `/bin/busybox`
/// (scripts/make-test-image.sh) and `ip` (pod network namespaces).
pub fn runc_problem() -> Option<String> {
    wasmhook::backend::runc::available(None)
        .err()
        .or_else(|| {
            (!Path::new("/bin/busybox").exists())
                .then(|| "/bin/busybox is missing (apt-get install busybox-static)".to_string())
        })
        .or_else(ip_problem)
}

/// Whether `ip` (iproute2), which makes network namespaces, is missing.
pub fn ip_problem() -> Option<String> {
    std::process::Command::new("ip")
        .arg("-V")
        .output()
        .is_err()
        .then(|| "`ip` is missing (apt-get install iproute2)".to_string())
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Run `scripts/<name>` with `args` (bash); panics with its stderr unless it succeeds.
pub fn run_script(name: &str, args: &[&Path]) {
    let out = std::process::Command::new("bash")
        .arg(repo().join("scripts").join(name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {name}: {e}"));
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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

/// Make a FIFO (named pipe) at `path`: opening it blocks until the other end is opened.
pub fn mkfifo(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap_or_else(|e| panic!("mkfifo {}: {e}", path.display()));
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
