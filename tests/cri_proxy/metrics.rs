//! The proxy's `/metrics`: what it counts, and that a warm call makes no runtime call.

use super::*;

/// A proxy whose runtime socket does not exist yet starts all the same and answers
/// `Unavailable`; once the socket appears (here: a symlink to containerd's), calls go
/// through. Then it shuts down, removing its socket.
/// `GET /metrics` from the proxy's metrics address, the body as text.
async fn scrape(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.0 200"), "{out}");
    out
}

/// The value of the metric line starting with `name` (labels included), or 0.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Once a container's context is cached, wasm calls make no call to containerd at all.
pub(super) async fn warm_wasm_exec_makes_no_runtime_call(w: &World, _: &Containerd) {
    exec_ok(w, &["/hooks/noop.wasm"], 0).await;
    let before = metric(
        &scrape(w.metrics).await,
        "wasmhook_cri_runtime_lookups_total",
    );
    assert!(
        before >= 2.0,
        "the first call looked the container up: {before}"
    );
    for _ in 0..5 {
        assert_eq!(exec_ok(w, &["/hooks/noop.wasm"], 1).await.exit_code, 0);
    }
    let after = metric(
        &scrape(w.metrics).await,
        "wasmhook_cri_runtime_lookups_total",
    );
    assert_eq!(
        after, before,
        "warm wasm calls looked the container up again"
    );
}

/// `/metrics` counts the kubelet's calls by method, wasm calls by outcome, their latency.
pub(super) async fn metrics_count_calls_and_outcomes(w: &World, _: &Containerd) {
    let before = scrape(w.metrics).await;
    let exec = r#"wasmhook_cri_calls_total{service="runtime.v1.RuntimeService",method="ExecSync"}"#;
    let ok = r#"wasmhook_cri_wasm_exec_total{outcome="ok"}"#;
    let exit = r#"wasmhook_cri_wasm_exec_total{outcome="exit"}"#;
    let native = r#"wasmhook_cri_wasm_exec_total{outcome="relayed-native"}"#;
    let trap = r#"wasmhook_cri_wasm_exec_total{outcome="trap"}"#;
    exec_ok(w, &["/hooks/noop.wasm"], 0).await;
    exec_ok(w, &["/hooks/fail.wasm"], 0).await;
    exec_ok(w, &["/hooks/trap.wasm"], 0).await;
    exec_ok(w, &["/bin/true"], 0).await;
    w.proxy.version().await.unwrap();
    let after = scrape(w.metrics).await;
    let d = |name: &str| metric(&after, name) - metric(&before, name);
    assert_eq!(d(exec), 4.0, "{after}");
    assert_eq!(
        (d(ok), d(exit), d(trap), d(native)),
        (1.0, 1.0, 1.0, 1.0),
        "{after}"
    );
    assert!(
        d(r#"wasmhook_cri_calls_total{service="runtime.v1.RuntimeService",method="Version"}"#)
            >= 1.0
    );
    assert!(
        d("wasmhook_cri_wasm_exec_duration_seconds_count") >= 3.0,
        "{after}"
    );
    // This scrape's own connection is not a CRI call: nothing is in flight now.
    assert_eq!(
        metric(&after, "wasmhook_cri_in_flight_calls"),
        0.0,
        "{after}"
    );
}

/// A module the node has not compiled yet: its compile has a bound of its own and goes on
/// past it in the background; the call that hit the bound gets `Unknown` (an errored
/// probe, not a failed one), and a later call runs the compiled module.
pub(super) async fn compiling_is_not_charged_to_the_call(w: &World, cd: &Containerd) {
    let running = RunningProxy::start(CriProxyConfig {
        listen: cd.dir().join("proxy-compile.sock"),
        runtime_endpoint: cd.socket(),
        compile_timeout: Duration::from_micros(1),
        ..CriProxyConfig::default()
    })
    .await;
    let c = running.client();
    let e = c
        .exec_sync(&w.pod.container_id, &["/hooks/hello.wat"], 1)
        .await
        .expect_err("a 1 µs compile bound");
    assert_eq!(e.code, Code::Unknown, "{e}");
    assert!(e.message.contains("compiling took longer than"), "{e}");
    let mut ran = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Ok(r) = c
            .exec_sync(&w.pod.container_id, &["/hooks/hello.wat"], 1)
            .await
        {
            ran = Some(r);
            break;
        }
    }
    let r = ran.expect("the background compile finished and later calls use it");
    assert_eq!(r.exit_code, 0, "{}", r.stderr());
    assert!(r.stdout().contains("hello"), "{}", r.stdout());
    running.stop().await.unwrap();
}
