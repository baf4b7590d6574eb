//! The harness alone, straight to containerd, and the process helpers its clean-up checks use.

use super::*;

/// The harness alone, straight to containerd: a pod runs, `ExecSync` works, and teardown
/// leaves no process, mount, cgroup or directory behind.
#[test]
fn harness_runs_a_pod_and_leaves_nothing_behind() {
    let Some(cd) = Containerd::start() else {
        return;
    };
    let dir = cd.dir().to_path_buf();
    let socket = cd.socket();
    let cgroup = cd.cgroup_parent();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = Cri::new(&socket);
        let v = c.version().await.expect("Version");
        assert_eq!(v.runtime_name, "containerd");
        assert_eq!(v.runtime_api_version, "v1");

        let t = Instant::now();
        let pod = cri::run_busybox_pod(&c, &cd, "harness", &[("wasmhook.dev/example", "yes")])
            .await
            .unwrap_or_else(|e| panic!("pod: {e}\n{}", cd.log_tail(30)));
        eprintln!("pod running in {:.2?}", t.elapsed());
        std::fs::write(pod.data.join("input.txt"), "from the host\n").unwrap();

        let r = c
            .exec_sync(&pod.container_id, &["/bin/true"], 0)
            .await
            .expect("ExecSync true");
        assert_eq!(
            (r.exit_code, r.stdout(), r.stderr()),
            (0, String::new(), String::new())
        );

        let r = c
            .exec_sync(
                &pod.container_id,
                &["/bin/sh", "-c", "echo out; echo err >&2; exit 3"],
                5,
            )
            .await
            .expect("ExecSync sh");
        assert_eq!(
            (r.exit_code, r.stdout(), r.stderr()),
            (3, "out\n".into(), "err\n".into())
        );

        // The container's view: env, cwd, the volumes (read-only /data, writable /work).
        let r = c
            .exec_sync(
                &pod.container_id,
                &[
                    "/bin/sh",
                    "-c",
                    "echo $GREETING $PATH; pwd; cat /data/input.txt; touch /data/x 2>/dev/null \
                     && echo data-writable; echo hi > /work/from-exec",
                ],
                0,
            )
            .await
            .unwrap();
        assert_eq!(
            r.stdout(),
            format!("hi {}\n/tmp\nfrom the host\n", cri::PATH_ENV),
            "stderr: {}",
            r.stderr()
        );
        assert_eq!(
            std::fs::read_to_string(pod.work.join("from-exec")).unwrap(),
            "hi\n"
        );

        // The pod annotations come back from PodSandboxStatus (where the proxy reads them),
        // and the verbose ContainerStatus has the pid and the runtime spec.
        let s = c.pod_sandbox_status(&pod.sandbox_id).await.unwrap();
        let s = s.status.unwrap();
        assert_eq!(
            s.annotations
                .get("wasmhook.dev/example")
                .map(String::as_str),
            Some("yes")
        );
        assert_eq!(s.state, cri::SANDBOX_READY);
        let st = c.container_status(&pod.container_id, true).await.unwrap();
        assert_eq!(st.status.as_ref().unwrap().state, cri::CONTAINER_RUNNING);
        let info: serde_json::Value = serde_json::from_str(&st.info["info"]).unwrap();
        assert!(info["pid"].as_u64().unwrap() > 0, "{info}");
        assert_eq!(info["runtimeSpec"]["process"]["cwd"], "/tmp");

        // Errors are containerd's own.
        let e = c
            .exec_sync("0123456789abcdef", &["/bin/true"], 0)
            .await
            .unwrap_err();
        assert_eq!(e.code, wasmhook::grpc::Code::NotFound, "{e}");
    });
    drop(rt);

    let sleeping: Vec<String> = processes_in_cgroup(&cgroup);
    assert!(
        !sleeping.is_empty(),
        "the pod's processes are not in cgroup {cgroup}"
    );
    drop(cd);

    // Nothing left: no directory, mount, process in the pods' cgroups, shim, cgroup.
    assert!(!dir.exists(), "{} is still there", dir.display());
    assert!(
        mounts_under(&dir).is_empty(),
        "mounts left: {:?}",
        mounts_under(&dir)
    );
    assert_eq!(
        processes_in_cgroup(&cgroup),
        Vec::<String>::new(),
        "processes left"
    );
    assert_eq!(
        processes_mentioning(&socket.display().to_string()),
        Vec::<String>::new()
    );
    for p in common::containerd::cgroup_dirs(cgroup.trim_start_matches('/')) {
        assert!(!p.exists(), "cgroup {} left", p.display());
    }
}

/// `pid cmdline` of the processes whose cgroup path contains `cgroup`.
fn processes_in_cgroup(cgroup: &str) -> Vec<String> {
    let needle = format!("{cgroup}/");
    pids()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .is_ok_and(|c| c.contains(&needle))
        })
        .map(describe)
        .collect()
}

/// `pid cmdline` of the processes whose command line contains `s`.
fn processes_mentioning(s: &str) -> Vec<String> {
    let me = std::process::id();
    pids()
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(s))
        })
        .map(describe)
        .collect()
}

fn pids() -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
}

fn describe(pid: u32) -> String {
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    format!("{pid} {}", String::from_utf8_lossy(&cmd).replace('\0', " "))
}

// ---------------------------------------------------------------------------------------
