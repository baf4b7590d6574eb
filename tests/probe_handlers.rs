//! The four probe handlers against real local servers and real wasm modules started by the
//! tests, checked for the kubelet's results and output texts. Timing is only asserted as
//! bounds with generous slack (shared 2-core machines).

mod common;

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::{GRPCAction, HTTPGetAction, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use wasmhook::grpc::{self, Code, Status};
use wasmhook::handlers::{Handlers, HookSettings, HookTarget};
use wasmhook::probe::grpc::{serving_status, HealthCheckRequest, HealthCheckResponse};
use wasmhook::probe::{self, ProbeContext, ProbeHandler, ProbeOutcome, ProbeResult};
use wasmhook::wasm::{Allocator, HookRuntime, RuntimeConfig};

use common::TempDir;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn ctx(timeout: Duration) -> ProbeContext {
    ProbeContext {
        target: HookTarget {
            env: vec![("GREETING".into(), "hi".into())],
            ..common::web_app_target(LOCALHOST)
        },
        timeout,
        settings: HookSettings::default(),
        cancel: CancellationToken::new(),
    }
}

fn handlers() -> Handlers {
    Handlers::new(
        HookRuntime::new(RuntimeConfig {
            allocator: Allocator::OnDemand,
            cache_dir: None,
            ..RuntimeConfig::default()
        })
        .expect("runtime"),
    )
}

async fn run(handler: ProbeHandler, c: &ProbeContext) -> ProbeOutcome {
    probe::run(&handlers(), &handler, c).await
}

fn outcome(result: ProbeResult, output: impl Into<String>) -> ProbeOutcome {
    ProbeOutcome::new(result, output)
}

/// A port nobody listens on (bound, then released).
async fn closed_port() -> u16 {
    let l = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    l.local_addr().unwrap().port()
}

/// A listener that accepts and then neither reads nor answers.
async fn silent_server() -> u16 {
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    port
}

// --- httpGet -------------------------------------------------------------------------------

/// An HTTP/1.1 server: `answer(path, port)` gives the raw response; the request heads are kept.
async fn http_server(answer: fn(&str, u16) -> Vec<u8>) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).into_owned();
                let path = head.split(' ').nth(1).unwrap_or("").to_owned();
                seen.lock().unwrap().push(head);
                let _ = s.write_all(&answer(&path, port)).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (port, heads)
}

fn response(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    let mut r = r.into_bytes();
    r.extend_from_slice(body);
    r
}

fn routes(path: &str, port: u16) -> Vec<u8> {
    match path {
        "/ok" => response("200 OK", &[], b"all good"),
        "/same-host" => response("302 Found", &[("Location", "/ok")], b"moved"),
        "/cross-host" => {
            let to = format!("http://localhost:{port}/ok");
            response(
                "301 Moved Permanently",
                &[("Location", &to)],
                b"gone over there",
            )
        }
        "/missing" => response("404 Not Found", &[], b"nope"),
        "/broken" => response("500 Internal Server Error", &[], b"oops"),
        "/big" => response("200 OK", &[], &[b'x'; 50 << 10]),
        _ => response("400 Bad Request", &[], b""),
    }
}

fn get(port: u16, path: &str) -> ProbeHandler {
    ProbeHandler::HttpGet(HTTPGetAction {
        port: IntOrString::Int(i32::from(port)),
        path: Some(path.into()),
        ..Default::default()
    })
}

#[tokio::test]
async fn http_probe_sends_the_probers_request_and_keeps_the_body() {
    let (port, heads) = http_server(routes).await;
    let o = run(get(port, "/ok"), &ctx(Duration::from_secs(10))).await;
    assert_eq!(o, outcome(ProbeResult::Success, "all good"));
    let head = heads.lock().unwrap()[0].clone();
    assert!(head.starts_with("GET /ok HTTP/1.1\r\n"), "{head}");
    assert!(
        head.contains("\r\nUser-Agent: kube-probe/1.34\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nAccept: */*\r\n"), "{head}");
    // The prober's transport: no compression, no keep-alive.
    assert!(
        !head.to_ascii_lowercase().contains("accept-encoding"),
        "{head}"
    );
    assert!(head.contains("\r\nConnection: close\r\n"), "{head}");
}

#[tokio::test]
async fn http_probe_follows_same_host_redirects_and_warns_on_cross_host_ones() {
    let (port, heads) = http_server(routes).await;
    let c = ctx(Duration::from_secs(10));
    let o = run(get(port, "/same-host"), &c).await;
    assert_eq!(o, outcome(ProbeResult::Success, "all good"));
    assert_eq!(heads.lock().unwrap().len(), 2);

    let o = run(get(port, "/cross-host"), &c).await;
    assert_eq!(
        o,
        outcome(
            ProbeResult::Warning,
            "Probe terminated redirects, Response body: gone over there"
        )
    );
    assert_eq!(heads.lock().unwrap().len(), 3, "localhost is not followed");
}

#[tokio::test]
async fn http_probe_fails_on_4xx_and_5xx_with_the_kubelets_text() {
    let (port, _) = http_server(routes).await;
    let c = ctx(Duration::from_secs(10));
    for (path, code) in [("/missing", 404), ("/broken", 500)] {
        let o = run(get(port, path), &c).await;
        assert_eq!(
            o,
            outcome(
                ProbeResult::Failure,
                format!("HTTP probe failed with statuscode: {code}")
            )
        );
    }
}

#[tokio::test]
async fn http_probe_reads_at_most_10_kib_of_body() {
    let (port, _) = http_server(routes).await;
    let o = run(get(port, "/big"), &ctx(Duration::from_secs(10))).await;
    assert_eq!(o.result, ProbeResult::Success);
    assert_eq!(o.output, "x".repeat(10 << 10));
}

#[tokio::test]
async fn http_probe_times_out_with_gos_client_text() {
    let port = silent_server().await;
    let started = Instant::now();
    let o = run(get(port, "/slow"), &ctx(Duration::from_millis(500))).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(
        o,
        outcome(
            ProbeResult::Failure,
            format!(
                r#"Get "http://127.0.0.1:{port}/slow": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"#
            )
        )
    );
}

#[tokio::test]
async fn http_probe_transport_errors_fail_and_bad_ports_are_unknown() {
    let port = closed_port().await;
    let o = run(get(port, "/"), &ctx(Duration::from_secs(5))).await;
    assert_eq!(
        o,
        outcome(
            ProbeResult::Failure,
            format!(
                r#"Get "http://127.0.0.1:{port}/": dial tcp 127.0.0.1:{port}: connect: connection refused"#
            )
        )
    );
    let named = ProbeHandler::HttpGet(HTTPGetAction {
        port: IntOrString::String("metrics".into()),
        ..Default::default()
    });
    let o = run(named, &ctx(Duration::from_secs(5))).await;
    assert_eq!(
        o,
        outcome(
            ProbeResult::Unknown,
            r#"strconv.Atoi: parsing "metrics": invalid syntax"#
        )
    );
}

// --- tcpSocket -----------------------------------------------------------------------------

fn tcp(port: u16) -> ProbeHandler {
    ProbeHandler::TcpSocket(TCPSocketAction {
        port: IntOrString::Int(i32::from(port)),
        host: None,
    })
}

#[tokio::test]
async fn tcp_probe_open_and_closed_ports() {
    let port = silent_server().await;
    let o = run(tcp(port), &ctx(Duration::from_secs(5))).await;
    assert_eq!(o, outcome(ProbeResult::Success, ""));

    let port = closed_port().await;
    let o = run(tcp(port), &ctx(Duration::from_secs(5))).await;
    assert_eq!(
        o,
        outcome(
            ProbeResult::Failure,
            format!("dial tcp 127.0.0.1:{port}: connect: connection refused")
        )
    );
}

// --- grpc ----------------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Health {
    Serving,
    NotServing,
    Unimplemented,
    Hang,
}

/// A `grpc.health.v1.Health` server over h2c; the services asked and user agents are kept.
async fn health_server(health: Health) -> (u16, Arc<Mutex<Vec<(String, String, String)>>>) {
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let seen = asked.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let seen = seen.clone();
            let service =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let path = req.uri().path().to_owned();
                        let ua = req
                            .headers()
                            .get(http::header::USER_AGENT)
                            .map(|v| v.to_str().unwrap().to_owned())
                            .unwrap_or_default();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let msg = grpc::unframe(body).unwrap();
                        let service = HealthCheckRequest::decode(msg).unwrap().service;
                        seen.lock().unwrap().push((path, service, ua));
                        let reply = |status| grpc::ok_response(&HealthCheckResponse { status });
                        Ok::<_, Infallible>(match health {
                            Health::Serving => reply(serving_status::SERVING),
                            Health::NotServing => reply(serving_status::NOT_SERVING),
                            Health::Unimplemented => Status::new(
                                Code::Unimplemented,
                                "unknown service grpc.health.v1.Health",
                            )
                            .into_response(),
                            Health::Hang => std::future::pending().await,
                        })
                    }
                });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(s), service),
            );
        }
    });
    (port, asked)
}

fn grpc_probe(port: u16, service: Option<&str>) -> ProbeHandler {
    ProbeHandler::Grpc(GRPCAction {
        port: i32::from(port),
        service: service.map(str::to_owned),
    })
}

#[tokio::test]
async fn grpc_probe_serving_and_not_serving() {
    let (port, asked) = health_server(Health::Serving).await;
    let o = run(grpc_probe(port, Some("db")), &ctx(Duration::from_secs(10))).await;
    assert_eq!(o, outcome(ProbeResult::Success, "service healthy"));
    assert_eq!(
        asked.lock().unwrap()[0],
        (
            "/grpc.health.v1.Health/Check".to_owned(),
            "db".to_owned(),
            "kube-probe/1.34".to_owned()
        )
    );

    let (port, asked) = health_server(Health::NotServing).await;
    let o = run(grpc_probe(port, None), &ctx(Duration::from_secs(10))).await;
    assert_eq!(
        o,
        outcome(
            ProbeResult::Failure,
            r#"service unhealthy (responded with "NOT_SERVING")"#
        )
    );
    assert_eq!(
        asked.lock().unwrap()[0].1,
        "",
        "the default service is empty"
    );
}

#[tokio::test]
async fn grpc_probe_unimplemented() {
    let (port, _) = health_server(Health::Unimplemented).await;
    let o = run(grpc_probe(port, None), &ctx(Duration::from_secs(10))).await;
    assert_eq!(
        o,
        outcome(
            ProbeResult::Failure,
            "error: this server does not implement the grpc health protocol \
             (grpc.health.v1.Health): unknown service grpc.health.v1.Health"
        )
    );
}

#[tokio::test]
async fn grpc_probe_rpc_that_never_completes_times_out() {
    let (port, _) = health_server(Health::Hang).await;
    let started = Instant::now();
    let o = run(grpc_probe(port, None), &ctx(Duration::from_secs(1))).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(6),
        "{took:?}"
    );
    assert_eq!(
        o,
        outcome(
            ProbeResult::Failure,
            "timeout: health rpc did not complete within 1s"
        )
    );
}

#[tokio::test]
async fn grpc_probe_that_cannot_connect_times_out_like_grpc_go() {
    // A server that never speaks HTTP/2, and a closed port: grpc-go's blocking dial retries
    // until the deadline, so both read as a connect timeout.
    for port in [silent_server().await, closed_port().await] {
        let started = Instant::now();
        let o = run(grpc_probe(port, None), &ctx(Duration::from_secs(1))).await;
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(6),
            "{took:?}"
        );
        assert_eq!(
            o,
            outcome(
                ProbeResult::Failure,
                format!(
                    r#"timeout: failed to connect service "127.0.0.1:{port}" within 1s: context deadline exceeded"#
                )
            )
        );
    }
}

#[tokio::test]
async fn grpc_probe_cancelled_is_unknown() {
    let port = silent_server().await;
    let c = ctx(Duration::from_secs(60));
    let cancel = c.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        cancel.cancel();
    });
    let started = Instant::now();
    let o = run(grpc_probe(port, None), &c).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(o.result, ProbeResult::Unknown);
}

// --- exec ----------------------------------------------------------------------------------

/// Writes `text` to `fd`, then `proc_exit(code)` (or returns, for 0).
fn printer(writes: &[(u32, &str)], code: u32) -> String {
    let mut data = String::new();
    let mut calls = String::new();
    let mut at = 64;
    for (fd, text) in writes {
        data.push_str(&format!(
            "(data (i32.const {at}) \"{}\")\n",
            text.replace('\n', "\\n")
        ));
        calls.push_str(&format!(
            "(call $write (i32.const {fd}) (i32.const {at}) (i32.const {}))\n",
            text.len()
        ));
        at += 64;
    }
    format!(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  {data}
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_start")
    {calls}
    (if (i32.ne (i32.const {code}) (i32.const 0)) (then (call $proc_exit (i32.const {code}))))))"#
    )
}

fn module(dir: &Path, name: &str, wat: &str) -> ProbeHandler {
    let path = dir.join(name);
    std::fs::write(&path, wat).unwrap();
    ProbeHandler::Exec {
        module: Some(path),
        argv: vec![name.to_owned(), "--check".to_owned()],
    }
}

#[tokio::test]
async fn exec_probe_exit_codes_and_output() {
    let dir = TempDir::new("exec-probe");
    let c = ctx(Duration::from_secs(20));

    let ok = module(dir.path(), "ok.wat", &printer(&[(1, "ready\n")], 0));
    assert_eq!(run(ok, &c).await, outcome(ProbeResult::Success, "ready\n"));

    // stdout, then stderr, as the kubelet appends them.
    let fail = module(
        dir.path(),
        "fail.wat",
        &printer(&[(2, "not ready\n"), (1, "checked db\n")], 1),
    );
    assert_eq!(
        run(fail, &c).await,
        outcome(ProbeResult::Failure, "checked db\nnot ready\n")
    );

    let trap = module(
        dir.path(),
        "trap.wat",
        r#"(module (memory (export "memory") 1) (func (export "_start") unreachable))"#,
    );
    let o = run(trap, &c).await;
    assert_eq!(o.result, ProbeResult::Failure);
    assert!(o.output.starts_with("wasmhook: trap: "), "{}", o.output);

    let missing = ProbeHandler::Exec {
        module: Some(dir.path().join("missing.wasm")),
        argv: vec!["missing.wasm".into()],
    };
    let o = run(missing, &c).await;
    assert_eq!(o.result, ProbeResult::Unknown);
    assert!(
        o.output
            .starts_with("failed to exec in container: wasmhook: "),
        "{}",
        o.output
    );
}

#[tokio::test]
async fn exec_probe_output_is_capped_at_10_kib() {
    let dir = TempDir::new("exec-probe-cap");
    let line = "y".repeat(60);
    let writes: Vec<(u32, &str)> = (0..200).map(|_| (1, line.as_str())).collect();
    let chatty = module(dir.path(), "chatty.wat", &printer(&writes, 0));
    let o = run(chatty, &ctx(Duration::from_secs(20))).await;
    assert_eq!(o.result, ProbeResult::Success);
    assert_eq!(o.output.len(), 10 << 10);
}

#[tokio::test]
async fn exec_probe_gets_the_container_env_without_a_hook_name() {
    let dir = TempDir::new("exec-probe-env");
    let dump = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wat/dump.wat"),
    )
    .unwrap();
    let o = run(
        module(dir.path(), "dump.wat", &dump),
        &ctx(Duration::from_secs(20)),
    )
    .await;
    assert_eq!(o.result, ProbeResult::Success, "{}", o.output);
    let env = o
        .output
        .split('\u{fffd}')
        .nth(1)
        .expect("the 0xff separator");
    let env: Vec<&str> = env.split('\0').filter(|e| !e.is_empty()).collect();
    assert_eq!(
        env,
        [
            "GREETING=hi",
            "WASMHOOK_POD=web",
            "WASMHOOK_NAMESPACE=default",
            "WASMHOOK_CONTAINER=app"
        ]
    );
}

#[tokio::test]
async fn exec_probe_past_its_timeout_fails_with_the_kubelets_text() {
    let dir = TempDir::new("exec-probe-spin");
    let spin = module(
        dir.path(),
        "spin.wat",
        r#"(module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))"#,
    );
    // The hook timeout (30 s by default) does not apply: the probe's does.
    let started = Instant::now();
    let o = run(spin, &ctx(Duration::from_millis(500))).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(10),
        "{took:?}"
    );
    assert_eq!(
        o,
        outcome(
            ProbeResult::Failure,
            r#"command "spin.wat --check" timed out"#
        )
    );
}
