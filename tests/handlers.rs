//! Host handlers (httpGet, tcpSocket, sleep) against real local servers started by the tests.
//! Every test is bounded: hooks get short timeouts and the assertions on time are only
//! "finished within the deadline plus generous slack".

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{HTTPGetAction, HTTPHeader, SleepAction, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;
use wasmhook::events::{reason, EventType};
use wasmhook::handlers::http::HttpClient;
use wasmhook::handlers::{
    http, sleep, tcp, HookContext, HookOutcome, HookSettings, HttpStatusMode,
};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const PREFIX: &str = r#"for Container "app" in Pod "web_default(uid-1)" failed - error: "#;

fn ctx(pod_ip: IpAddr, timeout: Duration) -> HookContext {
    HookContext {
        target: common::web_app_target(pod_ip),
        settings: HookSettings {
            timeout,
            ..HookSettings::default()
        },
        cancel: CancellationToken::new(),
    }
}

fn strict(mut c: HookContext) -> HookContext {
    c.settings.http_status = HttpStatusMode::Strict;
    c
}

fn get(port: u16, path: &str) -> HTTPGetAction {
    HTTPGetAction {
        port: IntOrString::Int(i32::from(port)),
        path: Some(path.into()),
        ..Default::default()
    }
}

fn headers(action: HTTPGetAction, hs: &[(&str, &str)]) -> HTTPGetAction {
    HTTPGetAction {
        http_headers: Some(
            hs.iter()
                .map(|(n, v)| HTTPHeader {
                    name: (*n).into(),
                    value: (*v).into(),
                })
                .collect(),
        ),
        ..action
    }
}

async fn run_http(action: &HTTPGetAction, c: &HookContext) -> HookOutcome {
    // Bounded even if the handler misbehaves.
    tokio::time::timeout(
        c.settings.timeout + Duration::from_secs(10),
        http::run(&HttpClient::new(), action, c),
    )
    .await
    .expect("httpGet handler outlived its deadline")
}

fn err(o: &HookOutcome) -> &str {
    o.result.as_ref().expect_err("hook should fail")
}

// ---- a tiny HTTP/1 server ----------------------------------------------------------------

#[derive(Clone, Debug)]
struct Seen {
    /// `GET /path HTTP/1.1`
    line: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
    fn path(&self) -> &str {
        self.line.split(' ').nth(1).unwrap_or("")
    }
}

type Handler = Arc<dyn Fn(&Seen) -> Vec<u8> + Send + Sync>;

struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// ClientHellos answered in plain HTTP.
    tls_hellos: Arc<Mutex<usize>>,
}

impl Server {
    fn port(&self) -> u16 {
        self.addr.port()
    }
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
    for (n, v) in headers {
        r.push_str(&format!("{n}: {v}\r\n"));
    }
    r.push_str("Connection: close\r\n\r\n");
    r.push_str(body);
    r.into_bytes()
}

async fn read_head<S: AsyncRead + Unpin>(s: &mut S, mut buf: Vec<u8>) -> Option<Seen> {
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() > 1 << 16 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let mut lines = text.split("\r\n");
    let line = lines.next()?.to_owned();
    let headers = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(": "))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    Some(Seen { line, headers })
}

async fn handle<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    first: Vec<u8>,
    handler: &Handler,
    seen: &Mutex<Vec<Seen>>,
) {
    if let Some(req) = read_head(&mut s, first).await {
        seen.lock().unwrap().push(req.clone());
        let _ = s.write_all(&handler(&req)).await;
        let _ = s.shutdown().await;
    }
}

/// Plain HTTP on `ip`. A connection starting with a TLS record (0x16) gets a `400` in plain
/// HTTP, like a real HTTP server answering a ClientHello.
async fn http_server(ip: IpAddr, handler: Handler) -> Server {
    serve(ip, handler, None).await
}

async fn serve(ip: IpAddr, handler: Handler, tls: Option<tokio_rustls::TlsAcceptor>) -> Server {
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let server = Server {
        addr: listener.local_addr().unwrap(),
        seen: Arc::default(),
        tls_hellos: Arc::default(),
    };
    let (seen, hellos) = (server.seen.clone(), server.tls_hellos.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let (handler, seen, hellos, tls) =
                (handler.clone(), seen.clone(), hellos.clone(), tls.clone());
            tokio::spawn(async move {
                if let Some(acceptor) = tls {
                    if let Ok(s) = acceptor.accept(s).await {
                        handle(s, Vec::new(), &handler, &seen).await;
                    }
                    return;
                }
                let mut first = vec![0u8; 4096];
                let n = s.read(&mut first).await.unwrap_or(0);
                first.truncate(n);
                if first.first() == Some(&0x16) {
                    *hellos.lock().unwrap() += 1;
                    let _ = s
                        .write_all(&response(400, &[], "Client sent an HTTP request?"))
                        .await;
                    let _ = s.shutdown().await;
                    return;
                }
                handle(s, first, &handler, &seen).await;
            });
        }
    });
    server
}

fn ok_handler() -> Handler {
    Arc::new(|_| response(200, &[], "ok"))
}

fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![ck.cert.der().clone()], key)
    .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// A port nothing listens on.
async fn closed_port(ip: IpAddr) -> u16 {
    let l = TcpListener::bind((ip, 0)).await.unwrap();
    l.local_addr().unwrap().port()
}

// ---- httpGet -------------------------------------------------------------------------------

#[tokio::test]
async fn http_get_plain_sends_the_kubelet_request() {
    let server = http_server(LOCALHOST, ok_handler()).await;
    let c = ctx(LOCALHOST, Duration::from_secs(5));
    let o = run_http(&get(server.port(), "/ready"), &c).await;
    assert_eq!(o.result, Ok(()));
    assert!(o.events.is_empty());
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    let req = &seen[0];
    assert_eq!(req.line, "GET /ready HTTP/1.1");
    assert_eq!(req.header("User-Agent"), ["kube-lifecycle/1.34"]);
    assert_eq!(req.header("Accept"), ["*/*"]);
    assert_eq!(req.header("Host"), [format!("127.0.0.1:{}", server.port())]);
    assert_eq!(req.header("Accept-Encoding"), ["gzip"]);
    // Go writes canonical header names.
    assert!(req.headers.iter().any(|(n, _)| n == "User-Agent"));
}

#[tokio::test]
async fn http_get_is_send_and_spawnable() {
    let server = http_server(LOCALHOST, ok_handler()).await;
    let c = ctx(LOCALHOST, Duration::from_secs(5));
    let action = get(server.port(), "/");
    let client = HttpClient::new();
    let o = tokio::spawn(async move { http::run(&client, &action, &c).await })
        .await
        .unwrap();
    assert_eq!(o.result, Ok(()));
}

#[tokio::test]
async fn http_get_path_is_a_url_reference() {
    let server = http_server(LOCALHOST, ok_handler()).await;
    let c = ctx(LOCALHOST, Duration::from_secs(5));
    for (path, want) in [
        ("healthz?x=1&y", "GET /healthz?x=1&y HTTP/1.1"),
        ("/a b#frag", "GET /a%20b HTTP/1.1"),
        ("", "GET / HTTP/1.1"),
    ] {
        let o = run_http(&get(server.port(), path), &c).await;
        assert_eq!(o.result, Ok(()), "{path}");
        assert_eq!(server.seen().last().unwrap().line, want, "{path}");
    }
}

#[tokio::test]
async fn http_get_named_port_and_default_host() {
    let server = http_server(LOCALHOST, ok_handler()).await;
    let mut c = ctx(LOCALHOST, Duration::from_secs(5));
    c.target.ports = vec![("admin".into(), server.port())];
    let action = HTTPGetAction {
        port: IntOrString::String("admin".into()),
        path: Some("/x".into()),
        ..Default::default()
    };
    assert_eq!(run_http(&action, &c).await.result, Ok(()));
    assert_eq!(server.seen().len(), 1);

    let missing = HTTPGetAction {
        port: IntOrString::String("nope".into()),
        path: Some("/x".into()),
        ..Default::default()
    };
    let o = run_http(&missing, &c).await;
    assert_eq!(
        err(&o),
        format!(r#"HTTP lifecycle hook (/x) {PREFIX}strconv.Atoi: parsing "nope": invalid syntax"#)
    );
    let o = run_http(&get(0, "/x"), &c).await;
    assert_eq!(
        err(&o),
        format!("HTTP lifecycle hook (/x) {PREFIX}invalid port number: 0")
    );
}

#[tokio::test]
async fn http_get_headers_override_in_order_with_host() {
    let server = http_server(LOCALHOST, ok_handler()).await;
    let c = ctx(LOCALHOST, Duration::from_secs(5));
    let action = headers(
        get(server.port(), "/"),
        &[
            ("x-custom", "one"),
            ("Host", "example.test"),
            ("X-Custom", "two"),
            ("User-Agent", "mine/1"),
            ("Accept", "text/plain"),
        ],
    );
    assert_eq!(run_http(&action, &c).await.result, Ok(()));
    let req = &server.seen()[0];
    assert_eq!(req.header("Host"), ["example.test"]);
    assert_eq!(req.header("X-Custom"), ["one", "two"]);
    assert_eq!(req.header("User-Agent"), ["mine/1"]);
    assert_eq!(req.header("Accept"), ["text/plain"]);

    // An empty Accept removes it.
    let action = headers(get(server.port(), "/"), &[("Accept", "")]);
    assert_eq!(run_http(&action, &c).await.result, Ok(()));
    let req = &server.seen()[1];
    assert!(req.header("Accept").is_empty(), "{req:?}");
    assert_eq!(req.header("User-Agent"), ["kube-lifecycle/1.34"]);

    // An invalid header name is a transport error, as in Go.
    let action = headers(get(server.port(), "/"), &[("bad name", "x")]);
    let o = run_http(&action, &c).await;
    assert_eq!(
        err(&o),
        format!(
            r#"HTTP lifecycle hook (/) {PREFIX}Get "http://127.0.0.1:{}/": net/http: invalid header field name "bad name""#,
            server.port()
        )
    );
}

#[tokio::test]
async fn http_get_https_without_verification() {
    let server = serve(LOCALHOST, ok_handler(), Some(tls_acceptor())).await;
    let c = ctx(LOCALHOST, Duration::from_secs(5));
    let action = HTTPGetAction {
        scheme: Some("HTTPS".into()),
        ..get(server.port(), "/secure")
    };
    let o = run_http(&action, &c).await;
    assert_eq!(o.result, Ok(()));
    assert!(o.events.is_empty());
    assert_eq!(server.seen()[0].line, "GET /secure HTTP/1.1");

    // By hostname (SNI sent) too.
    let action = HTTPGetAction {
        host: Some("localhost".into()),
        ..action
    };
    assert_eq!(run_http(&action, &c).await.result, Ok(()));
}

#[tokio::test]
async fn http_get_ipv6() {
    let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    let server = http_server(v6, ok_handler()).await;
    let c = ctx(v6, Duration::from_secs(5));
    assert_eq!(run_http(&get(server.port(), "/"), &c).await.result, Ok(()));
    assert_eq!(
        server.seen()[0].header("Host"),
        [format!("[::1]:{}", server.port())]
    );
    let port = closed_port(v6).await;
    let o = run_http(&get(port, "/"), &c).await;
    assert_eq!(
        err(&o),
        format!(
            r#"HTTP lifecycle hook (/) {PREFIX}Get "http://[::1]:{port}/": dial tcp [::1]:{port}: connect: connection refused"#
        )
    );
}

/// `/r/N` redirects to `/r/N-1`; `/r/0` answers 200.
fn chain_handler() -> Handler {
    Arc::new(|req: &Seen| {
        let n: u32 = req.path().trim_start_matches("/r/").parse().unwrap_or(0);
        if n == 0 {
            response(200, &[], "done")
        } else {
            response(302, &[("Location", &format!("/r/{}", n - 1))], "")
        }
    })
}

#[tokio::test]
async fn http_get_follows_same_host_redirects_up_to_go_limit() {
    let server = http_server(LOCALHOST, chain_handler()).await;
    let c = ctx(LOCALHOST, Duration::from_secs(10));
    // 9 redirects = 10 requests: Go's limit.
    let o = run_http(&get(server.port(), "/r/9"), &c).await;
    assert_eq!(o.result, Ok(()));
    let seen = server.seen();
    assert_eq!(seen.len(), 10);
    assert_eq!(seen[9].path(), "/r/0");
    assert_eq!(
        seen[1].header("Referer"),
        [format!("http://127.0.0.1:{}/r/9", server.port())]
    );
    assert_eq!(seen[1].header("User-Agent"), ["kube-lifecycle/1.34"]);

    // The 10th redirect is refused: `len(via) >= 10`. The URL is the Location as written.
    let o = run_http(&get(server.port(), "/r/10"), &c).await;
    assert_eq!(
        err(&o),
        format!(r#"HTTP lifecycle hook (/r/10) {PREFIX}Get "/r/0": stopped after 10 redirects"#)
    );
    assert_eq!(server.seen().len(), 20);
}

#[tokio::test]
async fn http_get_redirect_port_change_followed_cross_host_not() {
    let target = http_server(LOCALHOST, ok_handler()).await;
    let v6 = http_server(IpAddr::V6(Ipv6Addr::LOCALHOST), ok_handler()).await;
    let locations = [
        format!("http://127.0.0.1:{}/moved", target.port()),
        format!("http://localhost:{}/elsewhere", target.port()),
        format!("http://[::1]:{}/elsewhere", v6.port()),
    ];
    let locs = locations.clone();
    let redirector = http_server(
        LOCALHOST,
        Arc::new(move |req: &Seen| {
            let i: usize = req.path().trim_start_matches('/').parse().unwrap();
            response(301, &[("Location", &locs[i])], "")
        }),
    )
    .await;
    let c = ctx(LOCALHOST, Duration::from_secs(5));
    // Same hostname, other port: followed; the Host override does not survive an absolute
    // Location (Go).
    let action = headers(get(redirector.port(), "/0"), &[("Host", "h.test")]);
    assert_eq!(run_http(&action, &c).await.result, Ok(()));
    let seen = target.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path(), "/moved");
    assert_eq!(
        seen[0].header("Host"),
        [format!("127.0.0.1:{}", target.port())]
    );

    // Other hostnames: the 3xx is the final answer, which succeeds, even in strict mode.
    for (i, location) in locations.iter().enumerate().skip(1) {
        let o = run_http(
            &get(redirector.port(), &format!("/{i}")),
            &strict(c.clone()),
        )
        .await;
        assert_eq!(o.result, Ok(()), "{location}");
    }
    assert_eq!(target.seen().len(), 1);
    assert_eq!(v6.seen().len(), 0);
}

#[tokio::test]
async fn http_get_status_ignored_unless_strict() {
    let server = http_server(LOCALHOST, Arc::new(|_| response(500, &[], "boom"))).await;
    let c = ctx(LOCALHOST, Duration::from_secs(5));
    assert_eq!(run_http(&get(server.port(), "/"), &c).await.result, Ok(()));
    let o = run_http(&get(server.port(), "/"), &strict(c.clone())).await;
    assert_eq!(
        err(&o),
        format!("HTTP lifecycle hook (/) {PREFIX}HTTP probe failed with statuscode: 500")
    );
    let server = http_server(LOCALHOST, Arc::new(|_| response(204, &[], ""))).await;
    let o = run_http(&get(server.port(), "/"), &strict(c)).await;
    assert_eq!(o.result, Ok(()));
}

#[tokio::test]
async fn http_get_connection_refused_message() {
    let port = closed_port(LOCALHOST).await;
    let c = ctx(LOCALHOST, Duration::from_secs(5));
    let o = run_http(&get(port, "/"), &c).await;
    assert_eq!(
        err(&o),
        format!(
            r#"HTTP lifecycle hook (/) for Container "app" in Pod "web_default(uid-1)" failed - error: Get "http://127.0.0.1:{port}/": dial tcp 127.0.0.1:{port}: connect: connection refused"#
        )
    );
}

#[tokio::test]
async fn http_get_server_that_never_answers_hits_the_deadline() {
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s); // accept, read nothing, answer nothing
        }
    });
    let c = ctx(LOCALHOST, Duration::from_millis(500));
    let started = Instant::now();
    let o = run_http(&get(port, "/slow"), &c).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        err(&o),
        format!(
            r#"HTTP lifecycle hook (/slow) {PREFIX}Get "http://127.0.0.1:{port}/slow": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"#
        )
    );

    // Cancellation stops it too.
    let c = ctx(LOCALHOST, Duration::from_secs(60));
    let cancel = c.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        cancel.cancel();
    });
    let started = Instant::now();
    let o = run_http(&get(port, "/slow"), &c).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(err(&o).ends_with(&format!(
        r#"Get "http://127.0.0.1:{port}/slow": context canceled"#
    )));
}

/// A server that advertises (or streams) a huge body and keeps writing until the client goes.
async fn huge_body_server(chunked: bool) -> (u16, Arc<Mutex<u64>>) {
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let written = Arc::new(Mutex::new(0u64));
    let w = written.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let w = w.clone();
            tokio::spawn(async move {
                read_head(&mut s, Vec::new()).await;
                let head = if chunked {
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_owned()
                } else {
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", 50u64 << 20)
                };
                if s.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let data = vec![b'x'; 64 << 10];
                let mut chunk = format!("{:x}\r\n", data.len()).into_bytes();
                chunk.extend_from_slice(&data);
                chunk.extend_from_slice(b"\r\n");
                let piece = if chunked { chunk } else { data };
                for _ in 0..(50 << 20) / (64 << 10) {
                    if s.write_all(&piece).await.is_err() {
                        return;
                    }
                    *w.lock().unwrap() += piece.len() as u64;
                }
            });
        }
    });
    (port, written)
}

#[tokio::test]
async fn http_get_large_body_is_not_read() {
    for chunked in [false, true] {
        let (port, written) = huge_body_server(chunked).await;
        let c = ctx(LOCALHOST, Duration::from_secs(20));
        let started = Instant::now();
        let o = run_http(&get(port, "/big"), &c).await;
        assert_eq!(o.result, Ok(()), "chunked={chunked}");
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let written = *written.lock().unwrap();
        assert!(
            written < 40 << 20,
            "server wrote {written} bytes (chunked={chunked})"
        );
    }
}

#[tokio::test]
async fn http_get_https_to_http_fallback_drops_authorization() {
    let server = http_server(LOCALHOST, ok_handler()).await;
    let c = ctx(LOCALHOST, Duration::from_secs(5));
    let action = headers(
        HTTPGetAction {
            scheme: Some("HTTPS".into()),
            ..get(server.port(), "/hook")
        },
        &[("Authorization", "Bearer secret"), ("X-Keep", "yes")],
    );
    let o = run_http(&action, &c).await;
    assert_eq!(o.result, Ok(()));
    assert_eq!(*server.tls_hellos.lock().unwrap(), 1);
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].header("Authorization").is_empty(), "{:?}", seen[0]);
    assert_eq!(seen[0].header("X-Keep"), ["yes"]);
    assert_eq!(o.events.len(), 1);
    let ev = &o.events[0];
    assert_eq!(ev.kind, EventType::Warning);
    assert_eq!(ev.reason, reason::LIFECYCLE_HTTP_FALLBACK);
    assert_eq!(ev.container, None);
    assert_eq!(ev.pod, "web");
    assert_eq!(
        ev.message,
        format!(
            "request to HTTPS lifecycle hook 127.0.0.1:{} got HTTP response, retry with HTTP succeeded",
            server.port()
        )
    );
}

#[tokio::test]
async fn http_get_failed_fallback_reports_the_https_error() {
    // Answers every connection with a plain-HTTP 400 to the ClientHello, and drops plain
    // HTTP requests without answering.
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut first = [0u8; 1];
            if s.read_exact(&mut first).await.is_ok() && first[0] == 0x16 {
                let _ = s.write_all(&response(400, &[], "")).await;
            }
        }
    });
    let c = ctx(LOCALHOST, Duration::from_secs(5));
    let action = HTTPGetAction {
        scheme: Some("HTTPS".into()),
        ..get(port, "/")
    };
    let o = run_http(&action, &c).await;
    assert_eq!(
        err(&o),
        format!(
            r#"HTTP lifecycle hook (/) {PREFIX}Get "https://127.0.0.1:{port}/": http: server gave HTTP response to HTTPS client"#
        )
    );
    assert!(o.events.is_empty());
}

#[tokio::test]
async fn http_get_https_to_garbage_is_not_retried() {
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let conns = Arc::new(Mutex::new(0));
    let n = conns.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            *n.lock().unwrap() += 1;
            let _ = s.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").await;
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
        }
    });
    let c = ctx(LOCALHOST, Duration::from_secs(5));
    let action = HTTPGetAction {
        scheme: Some("HTTPS".into()),
        ..get(port, "/")
    };
    let o = run_http(&action, &c).await;
    assert_eq!(
        err(&o),
        format!(
            r#"HTTP lifecycle hook (/) {PREFIX}Get "https://127.0.0.1:{port}/": tls: first record does not look like a TLS handshake"#
        )
    );
    assert_eq!(*conns.lock().unwrap(), 1);
}

// ---- tcpSocket -----------------------------------------------------------------------------

fn tcp_action(port: IntOrString, host: Option<&str>) -> TCPSocketAction {
    TCPSocketAction {
        host: host.map(str::to_owned),
        port,
    }
}

async fn run_tcp(action: &TCPSocketAction, c: &HookContext) -> HookOutcome {
    tokio::time::timeout(
        c.settings.timeout + Duration::from_secs(10),
        tcp::run(action, c),
    )
    .await
    .expect("tcpSocket handler outlived its deadline")
}

#[tokio::test]
async fn tcp_socket_open_v4_and_v6_closed_and_named() {
    for ip in [LOCALHOST, IpAddr::V6(Ipv6Addr::LOCALHOST)] {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let c = ctx(ip, Duration::from_secs(5));
        let o = run_tcp(&tcp_action(IntOrString::Int(port.into()), None), &c).await;
        assert_eq!(o.result, Ok(()), "{ip}");
        // The connection was made (and closed at once).
        let (mut s, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
            .await
            .unwrap()
            .unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(s.read(&mut buf).await.unwrap(), 0);
    }

    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let mut c = ctx(LOCALHOST, Duration::from_secs(5));
    c.target.ports = vec![("db".into(), listener.local_addr().unwrap().port())];
    let o = run_tcp(
        &tcp_action(IntOrString::String("db".into()), Some("127.0.0.1")),
        &c,
    )
    .await;
    assert_eq!(o.result, Ok(()));

    let port = closed_port(LOCALHOST).await;
    let o = run_tcp(&tcp_action(IntOrString::Int(port.into()), None), &c).await;
    assert_eq!(
        err(&o),
        format!(
            r#"TCP lifecycle hook ({port}) {PREFIX}dial tcp 127.0.0.1:{port}: connect: connection refused"#
        )
    );
    let o = run_tcp(&tcp_action(IntOrString::String("nope".into()), None), &c).await;
    assert_eq!(
        err(&o),
        format!(
            r#"TCP lifecycle hook (nope) {PREFIX}strconv.Atoi: parsing "nope": invalid syntax"#
        )
    );
}

#[tokio::test]
async fn tcp_socket_full_accept_queue_ends_within_deadline() {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind((LOCALHOST, 0).into()).unwrap();
    let listener = socket.listen(1).unwrap(); // never accepts
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        if let Ok(Ok(s)) =
            tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await
        {
            fillers.push(s);
        }
    }
    let c = ctx(LOCALHOST, Duration::from_secs(1));
    let started = Instant::now();
    let o = run_tcp(&tcp_action(IntOrString::Int(addr.port().into()), None), &c).await;
    assert!(started.elapsed() < Duration::from_secs(4));
    eprintln!(
        "full accept queue: {:?} after {:?}",
        o.result,
        started.elapsed()
    );
    if let Err(e) = &o.result {
        assert_eq!(
            e,
            &format!(
                "TCP lifecycle hook ({}) {PREFIX}dial tcp {addr}: i/o timeout",
                addr.port()
            )
        );
    }
    drop(listener);
}

// ---- sleep ---------------------------------------------------------------------------------

#[tokio::test]
async fn sleep_zero_one_and_cancelled() {
    let c = ctx(LOCALHOST, Duration::from_secs(5));
    let started = Instant::now();
    let o = sleep::run(&SleepAction { seconds: 0 }, &c).await;
    assert_eq!(o.result, Ok(()));
    assert!(started.elapsed() < Duration::from_millis(500));

    let started = Instant::now();
    let o = sleep::run(&SleepAction { seconds: 1 }, &c).await;
    assert_eq!(o.result, Ok(()));
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(started.elapsed() < Duration::from_secs(5));

    let cancel = c.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        cancel.cancel();
    });
    let started = Instant::now();
    let o = sleep::run(&SleepAction { seconds: 30 }, &c).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        err(&o),
        format!(
            "Sleep lifecycle hook (30) {PREFIX}container terminated before sleep hook finished"
        )
    );
}
