//! What a container gets: its command, environment and working directory, cgroup limits,
//! image layers, shared volumes, the pod's loopback.

use super::*;

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
