//! The proxy and containerd started and restarted in either order.

use super::*;

pub(super) async fn proxy_starts_before_containerd(_: &World, cd: &Containerd) {
    let late = cd.dir().join("late.sock");
    let running = RunningProxy::start(CriProxyConfig {
        listen: cd.dir().join("proxy-early.sock"),
        runtime_endpoint: late.clone(),
        ..CriProxyConfig::default()
    })
    .await;
    let c = running.client();
    let e = c.version().await.expect_err("no runtime yet");
    eprintln!("  before the runtime: {e}");
    assert_eq!(e.code, Code::Unavailable, "{e}");
    std::os::unix::fs::symlink(cd.socket(), &late).unwrap();
    let v = c
        .version()
        .await
        .expect("Version once the runtime is there");
    assert_eq!(v.runtime_name, "containerd");
    running.stop().await.unwrap();
    let _ = std::fs::remove_file(&late);
}

/// containerd killed under a running proxy: calls answer `Unavailable`; once containerd is
/// back (same root and state: the pod is still there) the proxy reconnects by itself.
pub(super) async fn containerd_restarts_under_the_proxy(w: &World, cd: &mut Containerd) {
    // Warm: the proxy is connected.
    w.proxy.version().await.unwrap();
    cd.kill();
    let e = w
        .proxy
        .version()
        .await
        .expect_err("Version with containerd down");
    eprintln!("  containerd down: {e}");
    assert_eq!(e.code, Code::Unavailable, "{e}");
    let e = w
        .proxy
        .exec_sync(&w.pod.container_id, &["/bin/true"], 1)
        .await
        .expect_err("native ExecSync with containerd down");
    assert_eq!(e.code, Code::Unavailable, "{e}");
    // A wasm call on a warm context makes no call to containerd at all.
    let r = w
        .proxy
        .exec_sync(&w.pod.container_id, &["/hooks/noop.wasm"], 1)
        .await;
    eprintln!("  wasm ExecSync with containerd down: {r:?}");
    assert_eq!(r.expect("wasm ExecSync on a warm context").exit_code, 0);

    let t = Instant::now();
    cd.restart();
    eprintln!("  containerd back in {:.2?}", t.elapsed());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut tries = 0;
    let v = loop {
        tries += 1;
        match w.proxy.version().await {
            Ok(v) => break v,
            Err(e) if Instant::now() < deadline => {
                eprintln!("  Version after the restart: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the proxy did not reconnect within 10 s: {e}"),
        }
    };
    assert_eq!(v.runtime_name, "containerd");
    assert_eq!(tries, 1, "the first call after containerd came back failed");
    let r = w
        .proxy
        .exec_sync(&w.pod.container_id, &["/bin/true"], 5)
        .await
        .expect("native after restart");
    assert_eq!(r.exit_code, 0);
    let r = exec_ok(w, &["/hooks/inspect.wasm"], 0).await;
    assert_eq!(r.exit_code, 0, "stderr: {}", r.stderr());
    assert_same_reply(
        "Version after restart",
        both_raw(
            w,
            "Version",
            &cri::VersionRequest {
                version: "v1".into(),
            }
            .encode_to_vec(),
        )
        .await,
    );
}
