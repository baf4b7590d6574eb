//! The pod's annotations bound its hooks (timeouts, network), and ending a container
//! cancels its running hooks.

use super::*;

/// The pod's `wasmhook.dev/*` annotations (read from PodSandboxStatus) override the CLI
/// defaults: a hook timeout of 1 s ends a looping hook with exit 124 (as `timeout(1)`),
/// a fuel budget with exit 152 (128 + SIGXCPU).
pub(super) async fn pod_annotations_bound_hooks(w: &World, cd: &Containerd) {
    let limited = cri::run_busybox_pod(
        &w.proxy,
        cd,
        "limited",
        &[("wasmhook.dev/hook-timeout", "1s")],
    )
    .await
    .unwrap();
    let t = Instant::now();
    let r = w
        .proxy
        .exec_sync(&limited.container_id, &["/hooks/loop.wasm"], 0)
        .await;
    let took = t.elapsed();
    eprintln!("  hook-timeout 1s: {took:.3?}: {r:?}");
    let r = r.expect("a hook past its timeout answers OK with an exit code");
    assert_eq!(r.exit_code, 124, "stderr: {}", r.stderr());
    assert!(r.stderr().contains("timed out"), "{:?}", r.stderr());
    assert!(
        took < Duration::from_secs(3),
        "took {took:?} with a 1 s hook timeout"
    );

    let fueled = cri::run_busybox_pod(
        &w.proxy,
        cd,
        "fueled",
        &[("wasmhook.dev/hook-fuel", "1000000")],
    )
    .await
    .unwrap();
    let r = w
        .proxy
        .exec_sync(&fueled.container_id, &["/hooks/loop.wasm"], 0)
        .await;
    eprintln!("  hook-fuel 1000000: {r:?}");
    let r = r.expect("out of fuel answers OK with an exit code");
    assert_eq!(r.exit_code, 152, "stderr: {}", r.stderr());
    // The same module without the annotation still has the default (no fuel): noop is fine.
    let r = exec_ok(w, &["/hooks/noop.wasm"], 0).await;
    assert_eq!(r.exit_code, 0);

    for p in [&limited, &fueled] {
        w.proxy.stop_pod_sandbox(&p.sandbox_id).await.unwrap();
        w.proxy.remove_pod_sandbox(&p.sandbox_id).await.unwrap();
    }
}

/// The pod's `wasmhook.dev/hook-network` policy governs a wasm exec's sockets: an allow-list
/// permits its entry and refuses the rest, each refusal named on stderr; without the
/// annotation the exec has no network.
pub(super) async fn network_policy_from_the_pod_annotation(w: &World, cd: &Containerd) {
    let allowed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (allowed, other) = (allowed.local_addr().unwrap(), other.local_addr().unwrap());
    let policy = format!("127.0.0.1:{}", allowed.port());
    let pod = cri::run_busybox_pod(
        &w.proxy,
        cd,
        "netpolicy",
        &[("wasmhook.dev/hook-network", &policy)],
    )
    .await
    .unwrap();
    let probes = [
        "/hooks/netprobe.wasm".to_string(),
        format!("tcp:{allowed}"),
        format!("tcp:{other}"),
    ];
    let argv: Vec<&str> = probes.iter().map(String::as_str).collect();
    let r = w
        .proxy
        .exec_sync(&pod.container_id, &argv, 0)
        .await
        .expect("a wasm exec answers OK");
    assert_eq!(r.exit_code, 0, "stderr: {}", r.stderr());
    assert_eq!(
        String::from_utf8_lossy(&r.stdout),
        format!("tcp {allowed} ok\ntcp {other} err access-denied\n")
    );
    assert_eq!(
        r.stderr(),
        format!("wasmhook: network policy refused tcp connect to {other}\n")
    );
    // The shared pod has no annotation: no network at all.
    let r = exec_ok(w, &argv, 0).await;
    assert_eq!(
        String::from_utf8_lossy(&r.stdout),
        format!("tcp {allowed} err access-denied\ntcp {other} err access-denied\n")
    );
    w.proxy.stop_pod_sandbox(&pod.sandbox_id).await.unwrap();
    w.proxy.remove_pod_sandbox(&pod.sandbox_id).await.unwrap();
}

/// `StopContainer` (through the proxy) cancels that container's running wasm hook: its
/// `ExecSync` answers soon after, not at the hook timeout.
pub(super) async fn stop_container_cancels_a_running_hook(w: &World, _: &Containerd) {
    let victim = cri::add_container(&w.proxy, &w.pod, "victim")
        .await
        .unwrap();
    let proxy_socket: PathBuf = w.proxy.socket().to_path_buf();
    let id = victim.clone();
    let hook = tokio::spawn(async move {
        let c = Cri::new(proxy_socket);
        let r = c.exec_sync(&id, &["/hooks/loop.wasm"], 0).await;
        (r, Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !hook.is_finished(),
        "the looping hook ended by itself: {:?}",
        hook.await
    );
    let t = Instant::now();
    w.proxy
        .stop_container(&victim, 0)
        .await
        .expect("StopContainer");
    let stopped = Instant::now();
    eprintln!("  StopContainer took {:.3?}", stopped - t);
    let (r, answered) = tokio::time::timeout(HOOK_TIMEOUT + Duration::from_secs(5), hook)
        .await
        .expect("the hook's ExecSync never answered")
        .unwrap();
    let after = answered.saturating_duration_since(stopped);
    eprintln!("  hook answered {after:.3?} after StopContainer returned: {r:?}");
    assert!(
        after < Duration::from_secs(2),
        "answered {after:?} after StopContainer"
    );
    match r {
        Ok(r) => assert_ne!(r.exit_code, 0, "a cancelled hook succeeded: {r:?}"),
        Err(e) => eprintln!("  (a gRPC error: {e})"),
    }
    let st = w.proxy.container_status(&victim, false).await.unwrap();
    assert_eq!(st.status.unwrap().state, cri::CONTAINER_EXITED);
    // A container that is not running: containerd's own error, wasm module or not.
    for cmd in [&["/hooks/noop.wasm"][..], &["/bin/true"][..]] {
        let p = w.proxy.exec_sync(&victim, cmd, 0).await;
        let d = w.direct.exec_sync(&victim, cmd, 0).await;
        eprintln!("  {cmd:?} in the stopped container: {p:?}");
        let (p, d) = (p.expect_err("proxy"), d.expect_err("containerd"));
        assert_eq!((p.code, &p.message), (d.code, &d.message), "{cmd:?}");
        assert!(p.message.contains("CONTAINER_EXITED"), "{p}");
    }
    w.proxy
        .remove_container(&victim)
        .await
        .expect("RemoveContainer");
    // The pod's other container is unaffected.
    let r = exec_ok(w, &["/hooks/noop.wasm"], 0).await;
    assert_eq!(r.exit_code, 0);
}
