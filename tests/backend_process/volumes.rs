//! `emptyDir` and `hostPath` volumes: shared, and removed or kept as Kubernetes does.

use super::*;

#[tokio::test]
async fn empty_dir_is_shared_and_removed() {
    let mut f = fixture();
    let b = &f.backend;
    let sb = b
        .create_sandbox(&sandbox_spec(vec![VolumeSpec {
            name: "shared".into(),
            source: VolumeSource::EmptyDir,
        }]))
        .await
        .unwrap();
    let vol = sb.volumes["shared"].clone();
    assert!(vol.is_dir() && vol.starts_with(f.state.path()));
    let mount = |path: &str| Mount {
        host_path: vol.clone(),
        container_path: path.into(),
        read_only: false,
    };
    let mut writer = sh(
        "writer",
        "date >> $WASMHOOK_ROOT/var/log/index.html; echo hi > var/log/f",
    );
    writer.mounts = vec![mount("/var/log")];
    let mut reader = sh("reader", "cat $WASMHOOK_ROOT/usr/share/nginx/html/f");
    reader.mounts = vec![mount("/usr/share/nginx/html")];
    assert_eq!(run(b, &sb, &writer).await.1, ExitStatus::Exited(0));
    assert_eq!(run(b, &sb, &reader).await.1, ExitStatus::Exited(0));
    assert_eq!(first_line(&mut f.logs, "reader").await, "hi");
    assert!(vol.join("index.html").is_file());

    // A sleeping container is killed by remove_sandbox.
    let id = b
        .create_container(&sb, &sh("sleeper", "echo $$; exec sleep 1000"))
        .await
        .unwrap();
    b.start_container(&id).await.unwrap();
    let pid: i32 = first_line(&mut f.logs, "sleeper").await.parse().unwrap();
    b.remove_sandbox(&sb).await.unwrap();
    assert_eq!(proc_stat(pid), None);
    assert!(!vol.exists());
    assert!(dir_is_empty(f.state.path()));
}

#[tokio::test]
async fn host_path_is_used_as_is_and_kept() {
    let mut f = fixture();
    let b = &f.backend;
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("index.html"), "hello\n").unwrap();
    let sb = b
        .create_sandbox(&sandbox_spec(vec![VolumeSpec {
            name: "h".into(),
            source: VolumeSource::HostPath(host.path().to_path_buf()),
        }]))
        .await
        .unwrap();
    assert_eq!(sb.volumes["h"], host.path());
    let m = Mount {
        host_path: host.path().to_path_buf(),
        container_path: "/var/log".into(),
        read_only: true,
    };
    let mut s = sh("cat", "cat $WASMHOOK_ROOT/var/log/index.html");
    s.mounts = vec![m.clone()];
    run(b, &sb, &s).await;
    assert_eq!(first_line(&mut f.logs, "cat").await, "hello");
    // A working dir under a mount path is the volume's directory.
    let mut s = spec("cat2", &["cat", "index.html"]);
    s.mounts = vec![m.clone()];
    s.working_dir = Some("/var/log".into());
    run(b, &sb, &s).await;
    assert_eq!(first_line(&mut f.logs, "cat2").await, "hello");
    // Nested mounts are refused.
    let mut s = spec("nested", &["true"]);
    s.mounts = vec![
        m.clone(),
        Mount {
            container_path: "/var/log/inner".into(),
            ..m
        },
    ];
    let e = b.create_container(&sb, &s).await.unwrap_err();
    assert!(e.to_string().contains("nested"), "{e}");

    b.remove_sandbox(&sb).await.unwrap();
    assert!(host.path().join("index.html").is_file());
    assert!(dir_is_empty(f.state.path()));

    // A missing host path is a clear error.
    let e = b
        .create_sandbox(&sandbox_spec(vec![VolumeSpec {
            name: "gone".into(),
            source: VolumeSource::HostPath("/nonexistent/wasmhook".into()),
        }]))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "hostPath volume \"gone\": path \"/nonexistent/wasmhook\" does not exist"
    );
    assert!(dir_is_empty(f.state.path()));
}
