//! Host handlers (httpGet, tcpSocket, sleep) against real local servers started by the tests.
//! Every test is bounded: hooks get short timeouts and the assertions on time are only
//! "finished within the deadline plus generous slack".

#[path = "../common/mod.rs"]
mod common;

mod http_get;
mod http_get_failures;
mod tcp_and_sleep;

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
