//! The runc backend against the real `runc`, and one pod through the CLI binary.
//!
//! Needs root, `runc`, `ip` (iproute2) and `/bin/busybox` (busybox-static). With
//! `WASMHOOK_REQUIRE_RUNC=1` (set by `.ci/run`) a missing piece FAILS the tests; without it
//! they are skipped with a message on stderr.

mod common;

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
        let out = Command::new("bash")
            .arg(root().join("scripts/make-test-image.sh"))
            .arg(&d)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "make-test-image.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_code_env_args_and_working_dir() {
    if !runc_ready() {
        return;
    }
    let mut f = Fixture::new();
    let sb = f.sandbox(&[]).await;
    let mut spec = sh(
        "env",
        "echo \"$GREETING $0 $1\"; pwd; hostname; echo oops >&2; exit 3",
    );
    spec.argv.extend(["first".into(), "second".into()]);
    spec.env = vec![("GREETING".into(), "hello".into())];
    spec.working_dir = Some("/tmp".into());
    assert_eq!(run_to_exit(&f, &sb, &spec).await, ExitStatus::Exited(3));
    let lines = f.lines("env").await;
    assert!(
        lines.contains(&"hello first second".to_string()),
        "{lines:?}"
    );
    assert!(lines.contains(&"/tmp".to_string()), "{lines:?}");
    assert!(lines.contains(&"test-pod".to_string()), "{lines:?}");
    assert!(lines.contains(&"oops".to_string()), "{lines:?}");

    // The plain rootfs form of the image, and the image's default command when argv is empty.
    let mut plain = sh("plain", "test -x /bin/busybox && exit 0; exit 1");
    plain.image = Some("busybox-rootfs".into());
    assert_eq!(run_to_exit(&f, &sb, &plain).await, ExitStatus::Exited(0));

    let missing = f
        .b()
        .create_container(
            &sb,
            &ContainerSpec {
                image: Some("nginx:1.27".into()),
                ..sh("missing", "true")
            },
        )
        .await
        .unwrap_err();
    assert!(
        missing.0.contains("image \"nginx:1.27\" not found"),
        "{missing}"
    );
    let no_exe = f
        .b()
        .create_container(
            &sb,
            &ContainerSpec {
                argv: vec!["no-such-binary".into()],
                ..sh("noexe", "")
            },
        )
        .await;
    match no_exe {
        Err(e) => assert!(e.0.contains("no-such-binary"), "{e}"),
        Ok(id) => {
            let e = f.b().start_container(&id).await.unwrap_err();
            assert!(e.0.contains("no-such-binary"), "{e}");
            f.b().remove_container(&id).await.unwrap();
        }
    }
    f.b().remove_sandbox(&sb).await.unwrap();
    f.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cgroup_limits_applied() {
    if !runc_ready() {
        return;
    }
    let mut f = Fixture::new();
    let sb = f.sandbox(&[]).await;
    // v2 (memory.max, cpu.max) or v1 (memory.limit_in_bytes, cpu.cfs_quota_us).
    let mut spec = sh(
        "limited",
        "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu.max 2>/dev/null || \
         cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us",
    );
    spec.memory_limit = Some(64 << 20);
    spec.cpu_limit_millis = Some(250);
    assert_eq!(run_to_exit(&f, &sb, &spec).await, ExitStatus::Exited(0));
    let lines = f.lines("limited").await;
    assert_eq!(
        lines.first().map(String::as_str),
        Some("67108864"),
        "{lines:?}"
    );
    assert!(
        lines.get(1).is_some_and(|l| l.starts_with("25000")),
        "{lines:?}"
    );
    f.b().remove_sandbox(&sb).await.unwrap();
    f.assert_clean();
}

/// Two layers, one gzipped, the upper one deleting a file, a directory and (opaquely) the
/// content of another: the unpacked image shows only what survives.
#[test]
fn oci_layout_layers_with_whiteouts() {
    use sha2::{Digest, Sha256};
    use std::io::Write;
    fn tar_of(entries: &[(&str, Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, content) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            let data = content.unwrap_or("");
            h.set_entry_type(if content.is_some() {
                tar::EntryType::Regular
            } else {
                tar::EntryType::Directory
            });
            h.set_mode(if content.is_some() { 0o644 } else { 0o755 });
            h.set_size(data.len() as u64);
            h.set_cksum();
            b.append_data(&mut h, path, data.as_bytes()).unwrap();
        }
        b.into_inner().unwrap()
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("app");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    let put = |bytes: &[u8]| -> (String, usize) {
        let hex = format!("{:x}", Sha256::digest(bytes));
        std::fs::write(layout.join("blobs/sha256").join(&hex), bytes).unwrap();
        (format!("sha256:{hex}"), bytes.len())
    };
    let lower = tar_of(&[
        ("bin/", None),
        ("bin/tool", Some("v1")),
        ("etc/", None),
        ("etc/old.conf", Some("old")),
        ("cache/", None),
        ("cache/a", Some("a")),
        ("cache/sub/", None),
        ("cache/sub/b", Some("b")),
        ("gone/", None),
        ("gone/x", Some("x")),
    ]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&lower).unwrap();
    let lower_gz = gz.finish().unwrap();
    let upper = tar_of(&[
        ("bin/tool", Some("v2")),
        ("etc/.wh.old.conf", Some("")),
        (".wh.gone", Some("")),
        ("cache/", None),
        ("cache/.wh..wh..opq", Some("")),
        ("cache/fresh", Some("f")),
    ]);
    let (l1, s1) = put(&lower_gz);
    let (l2, s2) = put(&upper);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": ["/bin/tool"], "Cmd": ["--flag"], "Env": ["A=1"], "WorkingDir": "/etc"},
        "rootfs": {"type": "layers", "diff_ids": []}
    });
    let (c, cs) = put(config.to_string().as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": c, "size": cs},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": l1, "size": s1},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": l2, "size": s2},
        ]
    });
    let (m, ms) = put(manifest.to_string().as_bytes());
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": m,
                       "size": ms, "annotations": {"org.opencontainers.image.ref.name": "v1"}}]
    });
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();

    let cache = dir.path().join("cache");
    let img = wasmhook::backend::runc::image::resolve(dir.path(), "app:v1", &cache).unwrap();
    let r = &img.rootfs;
    assert!(img.rootfs.starts_with(&cache));
    assert_eq!(std::fs::read_to_string(r.join("bin/tool")).unwrap(), "v2");
    assert!(!r.join("etc/old.conf").exists());
    assert!(r.join("etc").is_dir());
    assert!(!r.join("gone").exists());
    assert!(!r.join("cache/a").exists());
    assert!(!r.join("cache/sub").exists());
    assert!(r.join("cache/fresh").exists());
    assert!(!r.join("cache/.wh..wh..opq").exists());
    assert_eq!(img.entrypoint, ["/bin/tool"]);
    assert_eq!(img.cmd, ["--flag"]);
    assert_eq!(img.env, ["A=1"]);
    assert_eq!(img.working_dir.as_deref(), Some("/etc"));
    // Cached by manifest digest: resolving again reuses the same tree.
    let again = wasmhook::backend::runc::image::resolve(dir.path(), "app:v1", &cache).unwrap();
    assert_eq!(again.rootfs, img.rootfs);
    let e = wasmhook::backend::runc::image::resolve(dir.path(), "app:v2", &cache)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no manifest"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_shared_between_containers_and_host() {
    if !runc_ready() {
        return;
    }
    let mut f = Fixture::new();
    let sb = f.sandbox(&["data"]).await;
    let host = sb.volumes["data"].clone();
    std::fs::write(host.join("from-host"), "host\n").unwrap();
    let mut a = sh("a", "cat /data/from-host > /data/a && echo a >> /data/a");
    a.mounts = vec![mount(&sb, "data", "/data", false)];
    assert_eq!(run_to_exit(&f, &sb, &a).await, ExitStatus::Exited(0));
    let mut b = sh(
        "b",
        "cat /shared/a > /shared/b; touch /ro/x 2>/dev/null && exit 9; exit 0",
    );
    b.mounts = vec![
        mount(&sb, "data", "/shared", false),
        mount(&sb, "data", "/ro", true),
    ];
    assert_eq!(run_to_exit(&f, &sb, &b).await, ExitStatus::Exited(0));
    assert_eq!(
        std::fs::read_to_string(host.join("b")).unwrap(),
        "host\na\n"
    );
    assert!(!host.join("x").exists(), "readOnly mount was written");
    f.b().remove_sandbox(&sb).await.unwrap();
    assert!(!host.exists(), "emptyDir deleted with the sandbox");
    f.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_of_a_pod_share_localhost() {
    if !runc_ready() {
        return;
    }
    let mut f = Fixture::new();
    let sb = f.sandbox(&["www"]).await;
    std::fs::write(sb.volumes["www"].join("index.html"), "served\n").unwrap();
    let mut server = sh("server", "exec httpd -f -p 8080 -h /www");
    server.mounts = vec![mount(&sb, "www", "/www", true)];
    let server_id = f.b().create_container(&sb, &server).await.unwrap();
    f.b().start_container(&server_id).await.unwrap();
    let mut client = sh(
        "client",
        "for i in $(seq 50); do wget -q -O /out/got http://127.0.0.1:8080/index.html && exit 0; \
         sleep 0.1; done; exit 1",
    );
    let sb_out = f.sandbox(&["out"]).await; // a second pod: its own netns
    client.mounts = vec![mount(&sb_out, "out", "/out", false)];
    // In the server's pod: reaches it.
    assert_eq!(run_to_exit(&f, &sb, &client).await, ExitStatus::Exited(0));
    assert_eq!(
        std::fs::read_to_string(sb_out.volumes["out"].join("got")).unwrap(),
        "served\n"
    );
    // In another pod: its loopback has no server.
    let mut other = sh(
        "other",
        "wget -q -T 2 -O /dev/null http://127.0.0.1:8080/index.html && exit 0; exit 1",
    );
    other.mounts = vec![];
    assert_eq!(
        run_to_exit(&f, &sb_out, &other).await,
        ExitStatus::Exited(1)
    );
    f.b().remove_sandbox(&sb).await.unwrap();
    f.b().remove_sandbox(&sb_out).await.unwrap();
    f.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_handled_ignored_then_sigkill() {
    if !runc_ready() {
        return;
    }
    let mut f = Fixture::new();
    let sb = f.sandbox(&[]).await;
    // A TERM handler: graceful exit with its own code.
    let graceful = f
        .b()
        .create_container(
            &sb,
            &sh(
                "graceful",
                "trap 'exit 7' TERM; while true; do sleep 0.1; done",
            ),
        )
        .await
        .unwrap();
    f.b().start_container(&graceful).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    f.b().signal(&graceful, 15).await.unwrap();
    let st = tokio::time::timeout(Duration::from_secs(10), f.b().wait(&graceful))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(st, ExitStatus::Exited(7));
    // No handler, PID 1: SIGTERM is ignored, SIGKILL is not.
    let stubborn = f
        .b()
        .create_container(&sb, &sh("stubborn", "trap '' TERM; sleep 1000"))
        .await
        .unwrap();
    f.b().start_container(&stubborn).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    f.b().signal(&stubborn, 15).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(700), f.b().wait(&stubborn))
            .await
            .is_err(),
        "SIGTERM should be ignored"
    );
    f.b().signal(&stubborn, 9).await.unwrap();
    let st = tokio::time::timeout(Duration::from_secs(10), f.b().wait(&stubborn))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(st, ExitStatus::Signaled(9));
    assert_eq!(st.code(), 137);
    // Signalling and removing an exited container succeed.
    f.b().signal(&stubborn, 15).await.unwrap();
    f.b().remove_container(&stubborn).await.unwrap();
    f.b().remove_container(&graceful).await.unwrap();
    f.b().remove_sandbox(&sb).await.unwrap();
    f.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_exec() {
    if !runc_ready() {
        return;
    }
    let mut f = Fixture::new();
    let sb = f.sandbox(&[]).await;
    let mut spec = sh("app", "echo ready > /tmp/state; sleep 1000");
    spec.env = vec![("APP_MODE".into(), "test".into())];
    let id = f.b().create_container(&sb, &spec).await.unwrap();
    f.b().start_container(&id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let argv = |s: &str| vec!["sh".to_string(), "-c".to_string(), s.to_string()];
    let out = f
        .b()
        .exec(
            &id,
            &argv("cat /tmp/state; echo $APP_MODE; echo err >&2; exit 4"),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, 4);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ready\ntest\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    let t = std::time::Instant::now();
    let e = f
        .b()
        .exec(&id, &argv("sleep 100"), Duration::from_millis(500))
        .await
        .unwrap_err();
    assert_eq!(e.0, "command timed out");
    assert!(t.elapsed() < Duration::from_secs(5));
    let e = f
        .b()
        .exec(
            &id,
            &["no-such-binary".to_string()],
            Duration::from_secs(10),
        )
        .await
        .unwrap_err();
    assert!(e.0.contains("no-such-binary"), "{e}");
    // The container is still fine; removing the sandbox kills it.
    f.b().remove_sandbox(&sb).await.unwrap();
    assert!(f.b().wait(&id).await.is_err());
    f.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_removes_everything() {
    if !runc_ready() {
        return;
    }
    let mut f = Fixture::new();
    let sb = f.sandbox(&["v"]).await;
    let mut spec = sh("long", "sleep 1000");
    spec.mounts = vec![mount(&sb, "v", "/v", false)];
    spec.memory_limit = Some(64 << 20);
    spec.cpu_limit_millis = Some(500);
    let id = f.b().create_container(&sb, &spec).await.unwrap();
    f.b().start_container(&id).await.unwrap();
    let root = f.b().runc_root();
    let backend = f.backend.take().unwrap();
    drop(backend);
    let out = Command::new("runc")
        .arg("--root")
        .arg(&root)
        .args(["list", "-q"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "");
    for ns in &f.netns {
        assert!(!ns.exists());
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&*f.state.path().to_string_lossy()));
}

#[test]
fn pod_through_the_cli() {
    if !runc_ready() {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let (records, stdout) = run_pod_json_in(
        state.path(),
        &root().join("examples/pods/runc-sidecar.yaml"),
        "3s",
    );
    let has = |f: &dyn Fn(&serde_json::Value) -> bool| records.iter().any(f);
    for (reason, container) in [
        ("Created", "server"),
        ("Started", "server"),
        ("Created", "writer"),
        ("Started", "writer"),
        ("Killing", "writer"),
    ] {
        assert!(
            has(&|r| r["reason"] == reason && r["container"] == container),
            "{reason} {container}:\n{stdout}"
        );
    }
    assert!(
        !has(&|r| r["type"] == "Warning"),
        "no warnings expected:\n{stdout}"
    );
    let hook = |c: &str, h: &str, handler: &str| {
        has(&|r| {
            r["kind"] == "HookResult"
                && r["container"] == c
                && r["hook"] == h
                && r["handler"] == handler
                && r["success"] == true
        })
    };
    assert!(hook("server", "postStart", "exec"), "{stdout}");
    assert!(hook("writer", "postStart", "httpGet"), "{stdout}");
    assert!(hook("writer", "preStop", "exec"), "{stdout}");
    // The writer read the wasm hook's message through the pod's loopback, and its SIGTERM
    // handler ran.
    assert!(
        has(&|r| r["kind"] == "Log"
            && r["container"] == "writer"
            && r["line"] == "written by wasm"),
        "{stdout}"
    );
    assert!(
        has(&|r| r["kind"] == "Log" && r["container"] == "writer" && r["line"] == "bye"),
        "{stdout}"
    );
    let status = records.last().unwrap();
    assert_eq!(status["kind"], "PodStatus");
    assert_eq!(status["phase"], "Succeeded", "{stdout}");
    for c in status["containers"].as_array().unwrap() {
        assert_eq!(c["exitCode"], 0, "{stdout}");
    }
    let list = Command::new("runc")
        .arg("--root")
        .arg(state.path().join("runc"))
        .args(["list", "-q"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&list.stdout).contains("runc-sidecar"),
        "containers left"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let sandbox = state.path().join("sandboxes/runc-sidecar");
    assert!(!mounts.contains(&*sandbox.to_string_lossy()), "{mounts}");
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&netns.stdout).contains("wasmhook-runc-sidecar"));
}

const SWEEP_HELPER_ENV: &str = "WASMHOOK_TEST_RUNC_SWEEP_STATE";
const SWEEP_IMAGES_ENV: &str = "WASMHOOK_TEST_RUNC_SWEEP_IMAGES";

/// Not a test on its own: the body of the child process of
/// `next_backend_sweeps_a_sigkilled_owners_sandbox`. Starts a container in a pod with an
/// emptyDir, prints the sandbox id and the container id, then waits to be SIGKILLed.
#[test]
fn runc_sweep_helper() {
    let (Some(state), Some(images)) = (
        std::env::var_os(SWEEP_HELPER_ENV),
        std::env::var_os(SWEEP_IMAGES_ENV),
    ) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let b = RuncBackend::new(RuncBackendConfig {
        images_dir: Some(images.into()),
        state_dir: Some(state.into()),
        runc: None,
        logs: None,
        ..RuncBackendConfig::default()
    });
    rt.block_on(async {
        let sb = b
            .create_sandbox(&SandboxSpec {
                pod: PodRef {
                    name: "swept-pod".into(),
                    namespace: "default".into(),
                    uid: String::new(),
                },
                volumes: vec![VolumeSpec {
                    name: "v".into(),
                    source: VolumeSource::EmptyDir,
                }],
            })
            .await
            .unwrap();
        let mut spec = sh("long", "sleep 1000");
        spec.mounts = vec![mount(&sb, "v", "/v", false)];
        let id = b.create_container(&sb, &spec).await.unwrap();
        b.start_container(&id).await.unwrap();
        println!("SWEEP_READY={} {id}", sb.id);
        use std::io::Write;
        std::io::stdout().flush().unwrap();
        std::future::pending::<()>().await;
    });
}

// A SIGKILLed wasmhook leaves its runc container running, its bundle mounted and its netns;
// the next backend on the same state dir sweeps them on its first `create_sandbox`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_backend_sweeps_a_sigkilled_owners_sandbox() {
    if !runc_ready() {
        return;
    }
    use std::io::BufRead;
    let state = tempfile::tempdir().unwrap();
    let mut helper = Command::new(std::env::current_exe().unwrap())
        .args([
            "runc_sweep_helper",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SWEEP_HELPER_ENV, state.path())
        .env(SWEEP_IMAGES_ENV, images())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = helper.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some((_, ids)) = line.split_once("SWEEP_READY=") {
                let _ = tx.send(ids.trim().to_string());
            }
        }
    });
    let ready = rx.recv_timeout(Duration::from_secs(60));
    helper.kill().unwrap(); // SIGKILL: no destructor runs in the helper.
    helper.wait().unwrap();
    let ready = ready.expect("the helper never started its container");
    let (sandbox_id, container_id) = ready.split_once(' ').unwrap();
    let runc_root = state.path().join("runc");
    let list = || {
        let out = Command::new("runc")
            .arg("--root")
            .arg(&runc_root)
            .args(["list", "-q"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(
        list(),
        container_id,
        "the container did not survive SIGKILL"
    );
    let netns = PathBuf::from("/run/netns").join(format!("wasmhook-{sandbox_id}"));
    assert!(netns.exists(), "{}", netns.display());
    let stale = state.path().join("sandboxes").join(sandbox_id);
    assert!(stale.exists());

    let (tx, logs) = mpsc::unbounded_channel();
    let mut f = Fixture {
        backend: Some(RuncBackend::new(RuncBackendConfig {
            images_dir: Some(images().to_path_buf()),
            state_dir: Some(state.path().to_path_buf()),
            runc: None,
            logs: Some(tx),
            ..RuncBackendConfig::default()
        })),
        state,
        logs,
        netns: vec![netns],
    };
    let sb = f.sandbox(&[]).await;
    assert_eq!(list(), "", "the stale container was not deleted");
    assert!(!stale.exists(), "the stale sandbox dir was not swept");
    f.b().remove_sandbox(&sb).await.unwrap();
    f.assert_clean();
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

/// The output of the one successful `hook` HookResult of `container`.
fn hook_output(records: &[serde_json::Value], container: &str, hook: &str) -> String {
    let r = records
        .iter()
        .find(|r| r["kind"] == "HookResult" && r["container"] == container && r["hook"] == hook)
        .unwrap_or_else(|| panic!("no {hook} result of {container} in {records:#?}"));
    assert_eq!(r["success"], true, "{r:#}");
    r["output"].as_str().unwrap().to_string()
}

/// A node address that is not loopback (the first global IPv4 address), if the node has one.
fn node_address() -> Option<std::net::IpAddr> {
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let cidr = text
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)?;
    cidr.split('/').next()?.parse().ok()
}

/// Under `wasmhook.dev/hook-network: pod`, a wasm hook's sockets live in the pod's network
/// namespace: it reaches the pod's own server on the pod's loopback, not a listener on the
/// node's loopback (another namespace), and the policy refuses the node's other addresses.
#[test]
fn hooks_reach_the_pods_port_and_not_the_nodes() {
    if !runc_ready() {
        return;
    }
    let on_node_loopback = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let node_port = on_node_loopback.local_addr().unwrap().port();
    let mut probes = vec![
        "tcp:127.0.0.1:8080".to_string(),
        format!("tcp:127.0.0.1:{node_port}"),
    ];
    let mut expected = vec![
        "tcp 127.0.0.1:8080 ok".to_string(),
        format!("tcp 127.0.0.1:{node_port} err connection-refused"),
    ];
    let on_node_address = node_address().map(|ip| std::net::TcpListener::bind((ip, 0)).unwrap());
    if let Some(l) = &on_node_address {
        let addr = l.local_addr().unwrap();
        probes.push(format!("tcp:{addr}"));
        expected.push(format!("tcp {addr} err access-denied"));
    }
    let netprobe = root().join("examples/hooks/bin/netprobe.component.wasm");
    let dir = tempfile::tempdir().unwrap();
    let pod = dir.path().join("pod.yaml");
    std::fs::write(
        &pod,
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: netprobe\n  annotations:\n    wasmhook.dev/hook-network: pod\nspec:\n  terminationGracePeriodSeconds: 5\n  containers:\n  - name: server\n    image: busybox\n    command: [sh, -c, \"trap 'exit 0' TERM; httpd -f -p 8080 -h /tmp & wait\"]\n    lifecycle:\n      preStop:\n        exec:\n          command: {}\n",
            serde_json::to_string(
                &std::iter::once(netprobe.to_string_lossy().into_owned())
                    .chain(probes)
                    .collect::<Vec<_>>()
            )
            .unwrap()
        ),
    )
    .unwrap();
    let (records, _) = run_pod_json(&pod, "2s");
    let output = hook_output(&records, "server", "preStop");
    let lines: Vec<&str> = output.lines().take(expected.len()).collect();
    assert_eq!(lines, expected, "{output}");
}

/// The runc variant of the README's HTTP drain example: the preStop component drains the
/// busybox app through the pod's loopback before SIGTERM.
#[test]
fn the_http_drain_example_drains_through_the_pods_loopback() {
    if !runc_ready() {
        return;
    }
    let (records, _) = run_pod_json(&root().join("examples/pods/runc-http-drain.yaml"), "2s");
    let output = hook_output(&records, "app", "preStop");
    assert!(
        output.contains("POST http://localhost:8080/cgi-bin/drain: 200 after"),
        "{output}"
    );
    assert!(
        records.iter().any(|r| r["kind"] == "Log"
            && r["line"] == "SIGTERM: exiting cleanly (drained: /www/drained)"),
        "{records:#?}"
    );
}

/// Probes in a real container: a tcpSocket startup probe and an httpGet readiness probe
/// reach the pod's port from inside its network namespace (at the pod IP), and a wasm
/// liveness probe sees the container's volume.
#[test]
fn probes_reach_the_pod_and_its_volumes() {
    if !runc_ready() {
        return;
    }
    let healthy = root().join("examples/hooks/bin/healthy.wat");
    let dir = tempfile::tempdir().unwrap();
    let pod = dir.path().join("pod.yaml");
    std::fs::write(
        &pod,
        format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: probed}}
spec:
  terminationGracePeriodSeconds: 5
  volumes: [{{name: www, emptyDir: {{}}}}]
  containers:
  - name: web
    image: busybox
    command: [sh, -c, "touch /www/healthy; (sleep 1; echo ok > /www/ready.txt) & trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait"]
    volumeMounts: [{{name: www, mountPath: /www}}]
    startupProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1, failureThreshold: 10}}
    readinessProbe: {{httpGet: {{port: 8080, path: /ready.txt}}, periodSeconds: 1}}
    livenessProbe: {{exec: {{command: ["{healthy}"]}}, periodSeconds: 1}}
"#,
            healthy = healthy.display()
        ),
    )
    .unwrap();
    let (records, stdout) = run_pod_json(&pod, "5s");
    assert!(
        records
            .iter()
            .any(|r| r["kind"] == "Readiness" && r["container"] == "web" && r["podReady"] == true),
        "never ready\n{stdout}"
    );
    assert!(
        !records
            .iter()
            .any(|r| r["reason"] == "Killing" && r["message"] != "Stopping container web"),
        "killed by a probe\n{stdout}"
    );
    for r in records.iter().filter(|r| r["reason"] == "Unhealthy") {
        let m = r["message"].as_str().unwrap();
        assert!(
            m.starts_with("Startup probe failed: dial tcp ")
                || m.starts_with("Readiness probe failed: HTTP probe failed with statuscode: 404"),
            "{m}\n{stdout}"
        );
    }
}

/// `command[0]` is looked up in the container first: a module on a volume of the container
/// (not on the host at that path) runs as wasm, read through the container's root; a shell
/// command runs natively through `runc exec`, inside the container's namespaces (its
/// hostname is the pod's), and its report says so.
#[test]
fn modules_in_the_container_and_native_commands() {
    if !runc_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let hooks = dir.path().join("hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    std::fs::copy(
        root().join("examples/hooks/bin/hello.wat"),
        hooks.join("hello.wat"),
    )
    .unwrap();
    let pod = dir.path().join("pod.yaml");
    std::fs::write(
        &pod,
        format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: mixed-hooks}}
spec:
  terminationGracePeriodSeconds: 5
  volumes: [{{name: hooks, hostPath: {{path: "{hooks}"}}}}]
  containers:
  - name: app
    image: busybox
    command: [sh, -c, "trap 'exit 0' TERM; while true; do sleep 0.1; done"]
    volumeMounts: [{{name: hooks, mountPath: /opt/wasmhook-test-hooks, readOnly: true}}]
    readinessProbe:
      exec: {{command: [sh, -c, "test -d /opt/wasmhook-test-hooks"]}}
      periodSeconds: 1
    lifecycle:
      postStart:
        exec: {{command: [/opt/wasmhook-test-hooks/hello.wat]}}
      preStop:
        exec: {{command: [/bin/sh, -c, "echo native; hostname"]}}
"#,
            hooks = hooks.display()
        ),
    )
    .unwrap();
    assert!(!Path::new("/opt/wasmhook-test-hooks").exists());
    let (records, stdout) = run_pod_json(&pod, "3s");
    let report = |hook: &str| {
        records
            .iter()
            .find(|r| r["kind"] == "HookResult" && r["hook"] == hook)
            .unwrap_or_else(|| panic!("no {hook} report\n{stdout}"))
            .clone()
    };
    let post = report("postStart");
    assert_eq!(post["native"], false, "{stdout}");
    assert_eq!(
        hook_output(&records, "app", "postStart"),
        "hello from a WAT hook\n"
    );
    let pre = report("preStop");
    assert_eq!(pre["native"], true, "{stdout}");
    assert_eq!(
        hook_output(&records, "app", "preStop"),
        "native\nmixed-hooks\n"
    );
    assert!(
        records
            .iter()
            .any(|r| r["kind"] == "Readiness" && r["ready"] == true),
        "the native readiness probe never passed\n{stdout}"
    );
}
