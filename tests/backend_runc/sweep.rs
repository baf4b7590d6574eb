//! A SIGKILLed wasmhook leaves containers behind; the next backend on the same state dir
//! sweeps them.

use super::*;

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
            "sweep::runc_sweep_helper",
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
