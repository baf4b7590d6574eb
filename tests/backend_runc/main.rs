//! The runc backend against the real `runc`, and one pod through the CLI binary.
//!
//! Needs root, `runc`, `ip` (iproute2) and `/bin/busybox` (busybox-static). With
//! `WASMHOOK_REQUIRE_RUNC=1` (set by `.ci/run`) a missing piece FAILS the tests; without it
//! they are skipped with a message on stderr.

#[path = "../common/mod.rs"]
mod common;

mod containers;
mod lifecycle;
mod pods;
mod sweep;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::sync::mpsc;
use wasmhook::backend::runc::{RuncBackend, RuncBackendConfig};
use wasmhook::backend::{
    Backend, ContainerSpec, ExitStatus, LogLine, Mount, Sandbox, SandboxSpec, VolumeSource,
    VolumeSpec,
};
use wasmhook::events::PodRef;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Whether to run; panics when required and impossible.
fn runc_ready() -> bool {
    common::can_run(
        "runc backend test",
        &["WASMHOOK_REQUIRE_RUNC"],
        common::runc_problem(),
    )
}

/// The test images (`busybox` OCI layout, `busybox-rootfs` plain rootfs), built once per run
/// into cargo's scratch directory for integration tests: a `static` is never dropped, so a
/// temporary directory here would be left behind by every run.
fn images() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("runc-test-images");
        common::run_script("make-test-image.sh", &[&d]);
        d
    })
}

struct Fixture {
    backend: Option<RuncBackend>,
    state: tempfile::TempDir,
    logs: mpsc::UnboundedReceiver<LogLine>,
    netns: Vec<PathBuf>,
}

impl Fixture {
    fn new() -> Fixture {
        let state = tempfile::tempdir().unwrap();
        let (tx, logs) = mpsc::unbounded_channel();
        let backend = RuncBackend::new(RuncBackendConfig {
            images_dir: Some(images().to_path_buf()),
            state_dir: Some(state.path().to_path_buf()),
            runc: None,
            logs: Some(tx),
            ..RuncBackendConfig::default()
        });
        Fixture {
            backend: Some(backend),
            state,
            logs,
            netns: Vec::new(),
        }
    }

    fn b(&self) -> &RuncBackend {
        self.backend.as_ref().unwrap()
    }

    async fn sandbox(&mut self, volumes: &[&str]) -> Sandbox {
        let sb = self
            .b()
            .create_sandbox(&SandboxSpec {
                pod: PodRef {
                    name: "test-pod".into(),
                    namespace: "default".into(),
                    uid: String::new(),
                },
                volumes: volumes
                    .iter()
                    .map(|v| VolumeSpec {
                        name: v.to_string(),
                        source: VolumeSource::EmptyDir,
                    })
                    .collect(),
            })
            .await
            .unwrap();
        let ns = sb.netns.clone().expect("a runc sandbox has a netns");
        assert!(ns.exists(), "{}", ns.display());
        self.netns.push(ns);
        sb
    }

    /// Everything gone: runc state, network namespaces, mounts under the state dir.
    fn assert_clean(&self) {
        let out = Command::new("runc")
            .arg("--root")
            .arg(self.b().runc_root())
            .args(["list", "-q"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "", "runc list");
        for ns in &self.netns {
            assert!(!ns.exists(), "netns {} left", ns.display());
        }
        let state = self.state.path().to_string_lossy().into_owned();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mounts.contains(&state),
            "mounts left under {state}:\n{mounts}"
        );
        let sandboxes = self.state.path().join("sandboxes");
        if sandboxes.exists() {
            assert_eq!(std::fs::read_dir(&sandboxes).unwrap().count(), 0);
        }
    }

    async fn lines(&mut self, container: &str) -> Vec<String> {
        let mut v = Vec::new();
        while let Ok(Some(l)) =
            tokio::time::timeout(Duration::from_millis(200), self.logs.recv()).await
        {
            if l.container == container {
                v.push(l.line);
            }
        }
        v
    }
}

fn sh(name: &str, script: &str) -> ContainerSpec {
    ContainerSpec {
        name: name.into(),
        image: Some("busybox".into()),
        argv: vec!["sh".into(), "-c".into(), script.into()],
        ..Default::default()
    }
}

fn mount(sb: &Sandbox, volume: &str, at: &str, read_only: bool) -> Mount {
    Mount {
        host_path: sb.volumes[volume].clone(),
        container_path: at.into(),
        read_only,
    }
}

async fn run_to_exit(f: &Fixture, sb: &Sandbox, spec: &ContainerSpec) -> ExitStatus {
    let id = f.b().create_container(sb, spec).await.unwrap();
    f.b().start_container(&id).await.unwrap();
    let st = tokio::time::timeout(Duration::from_secs(20), f.b().wait(&id))
        .await
        .expect("container exits")
        .unwrap();
    // Every wait returns the same status.
    assert_eq!(f.b().wait(&id).await.unwrap(), st);
    f.b().remove_container(&id).await.unwrap();
    st
}

/// Run `pod` (a manifest path) on the runc backend through the CLI, stopping it after
/// `stop_after`; the JSON records and the raw output, after asserting that the run succeeded.
/// Its state (bundles, the unpacked image, runc's root) goes to a temporary directory, not the
/// default `/run/wasmhook`, so the test leaves nothing behind.
fn run_pod_json(pod: &Path, stop_after: &str) -> (Vec<serde_json::Value>, String) {
    let state = tempfile::tempdir().unwrap();
    run_pod_json_in(state.path(), pod, stop_after)
}

/// [`run_pod_json`] with the state directory `state`, for a test that looks into it after.
fn run_pod_json_in(state: &Path, pod: &Path, stop_after: &str) -> (Vec<serde_json::Value>, String) {
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wasmhook"))
        .arg("--cache-dir")
        .arg(cache.path())
        .args(["run", "--backend", "runc", "--state-dir"])
        .arg(state)
        .arg("--images")
        .arg(images())
        .args(["--stop-after", stop_after, "--output", "json", "--logs"])
        .arg(pod)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let records = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (records, stdout.into_owned())
}
