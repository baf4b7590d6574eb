//! Host handler overhead against the bare libraries, on the same local server in the same
//! run: the httpGet handler vs a bare hyper GET on a fresh connection, and the tcpSocket
//! handler vs a bare tokio connect. The server closes every connection after one response
//! (no keep-alive), so both sides pay for a new connection each time.
//!
//! And what a wasm hook pays to do the same GET itself over `wasi:http` (netprobe under the
//! `pod` network policy: instantiation, the policy check, the request, the output), against
//! the httpGet handler.
//!
//! Run: `cargo bench --bench handlers`. `WASMHOOK_BENCH_FORMAT=lines` prints median/p99
//! lines for `scripts/bench.sh` instead (benches/common/mod.rs).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{HTTPGetAction, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;
use wasmhook::events::PodRef;
use wasmhook::handlers::http::HttpClient;
use wasmhook::handlers::{http, tcp, HookContext, HookKind, HookSettings, HookTarget};
use wasmhook::hook::HookNetwork;
use wasmhook::wasm::{
    Allocator, HookIdentity, HookModule, HookRuntime, Invocation, Limits, RuntimeConfig,
};

#[path = "common/mod.rs"]
mod common;

fn main() {
    if common::lines_mode() {
        lines();
    } else {
        divan::main();
    }
}

/// The same four comparisons with our own sampling, for median and p99.
fn lines() {
    const G: &str = "handlers";
    const HYPER: &str = "bare hyper GET (new connection)";
    const TOKIO: &str = "bare tokio TcpStream::connect";
    let n = common::samples(2000);
    let addr = server();
    let rt = runtime();
    let client = HttpClient::new();
    let ctx = ctx();
    let host = addr.to_string();
    let get = http_action(addr);
    let tcp_action = tcp_action(addr);

    let s = common::sample(n, 20, || rt.block_on(bare_hyper_get(addr, &host)));
    common::emit(G, HYPER, s, "", "");
    let s = common::sample(n, 20, || {
        let o = rt.block_on(http::run(&client, &get, &ctx));
        assert!(o.result.is_ok(), "{o:?}");
    });
    common::emit(G, "httpGet handler", s, HYPER, "hyper-util client");
    let s = common::sample(n, 20, || rt.block_on(bare_connect(addr)));
    common::emit(G, TOKIO, s, "", "connect + close");
    let s = common::sample(n, 20, || {
        let o = rt.block_on(tcp::run(&tcp_action, &ctx));
        assert!(o.result.is_ok(), "{o:?}");
    });
    common::emit(G, "tcpSocket handler", s, TOKIO, "");
    let (hooks, netprobe, get) = wasm_get(addr);
    // The same component doing nothing: what the request itself adds to a call.
    let idle = Invocation {
        args: get.args[..1].to_vec(),
        ..get.clone()
    };
    let s = common::sample(n, 20, || {
        let out = rt.block_on(hooks.run(&netprobe, idle.clone()));
        assert!(out.is_success(), "{out:?}");
    });
    common::emit(
        G,
        "wasm hook: netprobe without a request",
        s,
        "",
        "instantiate + run + exit of the same component",
    );
    let s = common::sample(n, 20, || rt.block_on(run_wasm_get(&hooks, &netprobe, &get)));
    common::emit(
        G,
        "wasm hook: one GET over wasi:http (netprobe, pod policy)",
        s,
        "httpGet handler",
        "component, fresh instance per call",
    );
}

/// A runtime, netprobe, and the call that makes it GET `/ready` from `addr` once.
fn wasm_get(addr: SocketAddr) -> (HookRuntime, HookModule, Invocation) {
    let rt = HookRuntime::new(RuntimeConfig {
        allocator: Allocator::Pooling { max_instances: 16 },
        cache_dir: None,
        allow_precompiled: false,
        default_limits: Limits::default(),
    })
    .unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/hooks/bin/netprobe.component.wasm");
    let module = rt.load_file(&path).unwrap();
    let ctx = ctx();
    let inv = Invocation {
        args: vec![
            "netprobe.component.wasm".into(),
            format!("http:http://{addr}/ready"),
        ],
        limits: Limits {
            timeout: Duration::from_secs(10),
            network: HookNetwork::Pod,
            ..Limits::default()
        },
        identity: Some(HookIdentity {
            pod: ctx.target.pod,
            container: ctx.target.container,
            kind: ctx.target.kind,
        }),
        ..Invocation::default()
    };
    (rt, module, inv)
}

async fn run_wasm_get(rt: &HookRuntime, module: &HookModule, inv: &Invocation) {
    let out = rt.run(module, inv.clone()).await;
    assert!(
        out.is_success() && out.output.stdout.ends_with(b" 200\n"),
        "{out:?}"
    );
}

fn http_action(addr: SocketAddr) -> HTTPGetAction {
    HTTPGetAction {
        port: IntOrString::Int(i32::from(addr.port())),
        path: Some("/ready".into()),
        ..Default::default()
    }
}

fn tcp_action(addr: SocketAddr) -> TCPSocketAction {
    TCPSocketAction {
        host: None,
        port: IntOrString::Int(i32::from(addr.port())),
    }
}

async fn bare_hyper_get(addr: SocketAddr, host: &str) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let req = ::http::Request::get("/ready")
        .header("host", host)
        .body(Empty::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert!(resp.status().is_success());
    resp.into_body().collect().await.unwrap();
    let _ = conn.await;
}

async fn bare_connect(addr: SocketAddr) {
    drop(TcpStream::connect(addr).await.unwrap());
}

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";

/// A keep-alive-free HTTP server on its own runtime thread; returns its address.
fn server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                while let Ok((mut s, _)) = listener.accept().await {
                    tokio::spawn(async move {
                        let mut buf = Vec::with_capacity(1024);
                        let mut chunk = [0u8; 1024];
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            match s.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let _ = s.write_all(RESPONSE).await;
                        let _ = s.shutdown().await;
                    });
                }
            });
        });
        rx.recv().unwrap()
    })
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn ctx() -> HookContext {
    HookContext {
        target: HookTarget {
            pod: PodRef {
                name: "web".into(),
                namespace: "default".into(),
                uid: "uid-1".into(),
            },
            container: "app".into(),
            kind: HookKind::PostStart,
            pod_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            netns: None,
            ports: vec![],
            env: vec![],
            mounts: vec![],
            instance: None,
        },
        settings: HookSettings {
            timeout: Duration::from_secs(10),
            ..HookSettings::default()
        },
        cancel: CancellationToken::new(),
    }
}

#[divan::bench(sample_count = 200, sample_size = 10)]
fn http_get_handler(bencher: divan::Bencher) {
    let addr = server();
    let rt = runtime();
    let client = HttpClient::new();
    let ctx = ctx();
    let action = http_action(addr);
    bencher.bench_local(|| {
        let o = rt.block_on(http::run(&client, &action, &ctx));
        assert!(o.result.is_ok(), "{o:?}");
    });
}

#[divan::bench(sample_count = 200, sample_size = 10)]
fn http_get_bare_hyper(bencher: divan::Bencher) {
    let addr = server();
    let rt = runtime();
    let host = addr.to_string();
    bencher.bench_local(|| rt.block_on(bare_hyper_get(addr, &host)));
}

#[divan::bench(sample_count = 200, sample_size = 10)]
fn tcp_socket_handler(bencher: divan::Bencher) {
    let addr = server();
    let rt = runtime();
    let ctx = ctx();
    let action = tcp_action(addr);
    bencher.bench_local(|| {
        let o = rt.block_on(tcp::run(&action, &ctx));
        assert!(o.result.is_ok(), "{o:?}");
    });
}

#[divan::bench(sample_count = 200, sample_size = 10)]
fn tcp_socket_bare_tokio(bencher: divan::Bencher) {
    let addr = server();
    let rt = runtime();
    bencher.bench_local(|| rt.block_on(bare_connect(addr)));
}

#[divan::bench(sample_count = 200, sample_size = 10)]
fn http_get_wasm_hook(bencher: divan::Bencher) {
    let addr = server();
    let rt = runtime();
    let (hooks, netprobe, get) = wasm_get(addr);
    bencher.bench_local(|| rt.block_on(run_wasm_get(&hooks, &netprobe, &get)));
}
