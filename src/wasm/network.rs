//! Enforcing a hook's network policy ([`crate::hook::network`]) in the host, for every socket
//! operation, name lookup and `wasi:http` request of one call. The guest is never trusted: it
//! only sees the results.
//!
//! Three doors, all of them component interfaces, one [`NetworkGuard`] per component call
//! behind them (a preview 1 module has none of the three, and no guard):
//! - **WASI sockets** (`wasi:sockets/tcp`, `udp`): wasmtime-wasi asks
//!   [`NetworkGuard::check`] before every bind, listen, accept, connect and send
//!   (`WasiCtxBuilder::socket_addr_check`); a refusal fails the guest's call with
//!   `access-denied`.
//! - **Name lookups** (`wasi:sockets/ip-name-lookup`): wasmtime-wasi has no per-name check, so
//!   [`add_to_linker`] shadows `resolve-addresses` with one that refuses names the policy does
//!   not list (`access-denied`) and hands the rest to wasmtime-wasi.
//! - **`wasi:http`** (`outgoing-handler`): [`HttpPolicy`] sends every request itself over a
//!   connection it opened to a checked address. (wasmtime-wasi-http's default sender resolves
//!   and connects by name on its own, which would let the name resolve to an address nobody
//!   checked.) Redirects are new requests from the guest, so each hop is checked again.
//!
//! Every refusal is recorded ([`NetworkGuard::take_refusals`]) and ends up in the hook's
//! report.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use wasmtime::component::Resource;
use wasmtime_wasi::p2::bindings::sockets::ip_name_lookup::{
    self as lookup, HostResolveAddressStream, ResolveAddressStream,
};
use wasmtime_wasi::p2::bindings::sockets::network::{self as net, ErrorCode, IpAddress, Network};
use wasmtime_wasi::p2::{DynPollable, SocketError};
use wasmtime_wasi::sockets::{SocketAddrUse, WasiSocketsCtxView};
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

use crate::hook::{HookNetwork, PodScope};

/// The policy of one call, and what it refused.
pub(crate) struct NetworkGuard {
    policy: HookNetwork,
    scope: PodScope,
    /// Addresses the list's name entries resolved to, with the entry's port; resolved on the
    /// first check that the static entries do not settle.
    named: tokio::sync::OnceCell<Vec<(IpAddr, Option<u16>)>>,
    /// Whether an address is assigned inside the pod's namespace, asked once per address.
    local: Mutex<HashMap<IpAddr, bool>>,
    refused: Mutex<Vec<String>>,
}

impl NetworkGuard {
    /// `scope`: [`PodScope::Namespace`] when the call runs inside the pod's network namespace.
    pub(crate) fn new(policy: HookNetwork, scope: PodScope) -> Arc<Self> {
        Arc::new(NetworkGuard {
            policy,
            scope,
            named: tokio::sync::OnceCell::new(),
            local: Mutex::new(HashMap::new()),
            refused: Mutex::new(Vec::new()),
        })
    }

    /// What the guard refused so far, one line each (`tcp connect to 10.0.0.1:80`), taken:
    /// the call is over when its outcome asks.
    pub(crate) fn take_refusals(&self) -> Vec<String> {
        std::mem::take(&mut *self.refused.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn refuse(&self, what: String) {
        tracing::debug!(policy = %self.policy, "hook network: refused {what}");
        let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        // A hook retrying in a loop must not grow the report without bound.
        if refused.len() < MAX_RECORDED && !refused.contains(&what) {
            refused.push(what);
        }
    }

    /// The socket check: may the guest use `addr` for `use_`? Records refusals.
    pub(crate) async fn check(&self, addr: SocketAddr, use_: SocketAddrUse) -> bool {
        let bind = matches!(use_, SocketAddrUse::TcpBind | SocketAddrUse::UdpBind);
        // An implicit bind before connect/listen, or an explicit bind to an ephemeral port on
        // every interface, reaches nobody by itself.
        if bind && addr.ip().is_unspecified() && addr.port() == 0 {
            return true;
        }
        if self.permits(addr).await {
            return true;
        }
        let verb = match use_ {
            SocketAddrUse::TcpBind => "tcp bind to",
            SocketAddrUse::UdpBind => "udp bind to",
            SocketAddrUse::TcpListen => "tcp listen on",
            SocketAddrUse::TcpAccept => "tcp accept from",
            SocketAddrUse::TcpConnect => "tcp connect to",
            SocketAddrUse::UdpSend => "udp send to",
            SocketAddrUse::UdpReceive => "udp receive from",
        };
        self.refuse(format!("{verb} {addr}"));
        false
    }

    /// May the guest look `name` up (wasi:sockets, or the host of an HTTP request)? IP literals
    /// are not lookups (wasmtime-wasi returns them as they are); what is done with the
    /// address is checked later.
    fn permits_lookup(&self, name: &str) -> bool {
        if literal_ip(name).is_some() || self.policy.permits_name(name) {
            return true;
        }
        self.refuse(format!("name lookup of {name}"));
        false
    }

    async fn permits(&self, addr: SocketAddr) -> bool {
        let is_local = |ip: IpAddr| self.is_local(ip);
        if self.policy.permits(addr, self.scope, &is_local) {
            return true;
        }
        let ip = addr.ip().to_canonical();
        self.named_addresses()
            .await
            .iter()
            .any(|(a, port)| *a == ip && port.is_none_or(|p| p == addr.port()))
    }

    /// The addresses of the list's name entries, resolved once per call (none without name
    /// entries, at the cost of one empty `Vec`).
    async fn named_addresses(&self) -> &[(IpAddr, Option<u16>)] {
        self.named
            .get_or_init(|| async {
                let mut out = Vec::new();
                for name in self.policy.names() {
                    let ips = resolve(name).await.unwrap_or_default();
                    for port in self.policy.name_ports(name) {
                        out.extend(ips.iter().map(|ip| (*ip, port)));
                    }
                }
                out
            })
            .await
    }

    /// An address is the pod's when it can be bound to inside the pod's namespace (the
    /// caller's thread is in it): that is exactly "assigned to one of its interfaces".
    fn is_local(&self, ip: IpAddr) -> bool {
        let mut cache = self.local.lock().unwrap_or_else(|e| e.into_inner());
        *cache
            .entry(ip)
            .or_insert_with(|| std::net::UdpSocket::bind((ip, 0)).is_ok())
    }
}

/// Refusals kept per call; later ones are dropped (the first ones say what went wrong).
const MAX_RECORDED: usize = 16;

/// `name` as an IP address, if it is one (`[::1]` too).
fn literal_ip(name: &str) -> Option<IpAddr> {
    let bare = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    bare.parse().ok()
}

/// The host's answer for `name`. `localhost` is the loopback addresses without asking
/// anyone (RFC 6761), so a policy naming it means the same on every node.
async fn resolve(name: &str) -> std::io::Result<Vec<IpAddr>> {
    if name.eq_ignore_ascii_case("localhost") {
        return Ok(vec![
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ]);
    }
    let addrs = tokio::net::lookup_host((name, 0)).await?;
    Ok(addrs.map(|a| a.ip().to_canonical()).collect())
}

// --- name lookups ---------------------------------------------------------------------------

/// Store data that carries a guard and WASI sockets.
pub(crate) trait GuardedSockets: Send + 'static {
    fn guarded_sockets(&mut self) -> (WasiSocketsCtxView<'_>, &NetworkGuard);
}

/// `wasi:sockets/ip-name-lookup` as wasmtime-wasi implements it, behind the guard.
pub(crate) struct GuardedLookup<'a> {
    sockets: WasiSocketsCtxView<'a>,
    guard: &'a NetworkGuard,
}

struct GuardedLookupData;

impl wasmtime::component::HasData for GuardedLookupData {
    type Data<'a> = GuardedLookup<'a>;
}

/// Shadow wasmtime-wasi's `resolve-addresses` (already in `linker`) with the guarded one.
pub(crate) fn add_to_linker<T: GuardedSockets>(
    linker: &mut wasmtime::component::Linker<T>,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    lookup::add_to_linker::<T, GuardedLookupData>(linker, |s| {
        let (sockets, guard) = s.guarded_sockets();
        GuardedLookup { sockets, guard }
    })?;
    linker.allow_shadowing(false);
    Ok(())
}

impl lookup::Host for GuardedLookup<'_> {
    fn resolve_addresses(
        &mut self,
        network: Resource<Network>,
        name: String,
    ) -> Result<Resource<ResolveAddressStream>, SocketError> {
        if !self.guard.permits_lookup(&name) {
            return Err(ErrorCode::AccessDenied.into());
        }
        lookup::Host::resolve_addresses(&mut self.sockets, network, name)
    }
}

// `ip-name-lookup`'s interface uses `network`'s types, so its host trait requires `network`'s.
impl net::Host for GuardedLookup<'_> {
    fn convert_error_code(&mut self, error: SocketError) -> wasmtime::Result<ErrorCode> {
        self.sockets.convert_error_code(error)
    }

    fn network_error_code(
        &mut self,
        err: Resource<net::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        self.sockets.network_error_code(err)
    }
}

impl net::HostNetwork for GuardedLookup<'_> {
    fn drop(&mut self, network: Resource<Network>) -> wasmtime::Result<()> {
        net::HostNetwork::drop(&mut self.sockets, network)
    }
}

impl HostResolveAddressStream for GuardedLookup<'_> {
    fn resolve_next_address(
        &mut self,
        stream: Resource<ResolveAddressStream>,
    ) -> Result<Option<IpAddress>, SocketError> {
        HostResolveAddressStream::resolve_next_address(&mut self.sockets, stream)
    }

    fn subscribe(
        &mut self,
        stream: Resource<ResolveAddressStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        HostResolveAddressStream::subscribe(&mut self.sockets, stream)
    }

    fn drop(&mut self, stream: Resource<ResolveAddressStream>) -> wasmtime::Result<()> {
        HostResolveAddressStream::drop(&mut self.sockets, stream)
    }
}

// --- wasi:http ------------------------------------------------------------------------------

/// `wasi:http/outgoing-handler` under the guard: every request connects to a checked address,
/// within the hook's deadline.
pub(crate) struct HttpPolicy {
    pub(crate) guard: Arc<NetworkGuard>,
    /// The hook's deadline: no connect, handshake or wait for a response outlives it.
    pub(crate) deadline: Instant,
}

type Error = wasmtime_wasi_http::Error;
type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;

impl WasiHttpHooks for HttpPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: IoFuture,
    ) -> Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), Error>> + Send> {
        drop(fut);
        let guard = self.guard.clone();
        let deadline = tokio::time::Instant::from_std(self.deadline);
        Box::new(async move {
            // Every step is bounded by the hook's deadline; the request options can only
            // shorten it.
            let bound = |limit: Option<std::time::Duration>| match limit {
                Some(d) => deadline.min(tokio::time::Instant::now() + d),
                None => deadline,
            };
            let opts = options.unwrap_or_default();
            let stream = connect(&guard, request.uri(), bound(opts.connect_timeout)).await?;
            send(stream, request, bound(opts.first_byte_timeout)).await
        })
    }

    fn default_scheme(&mut self) -> Option<http::uri::Scheme> {
        // A hook calling `localhost:8080/drain` means plain HTTP, as curl does.
        Some(http::uri::Scheme::HTTP)
    }
}

/// A connection (plain or TLS) for `uri`, to an address the guard permits.
async fn connect(
    guard: &NetworkGuard,
    uri: &http::Uri,
    deadline: tokio::time::Instant,
) -> Result<Box<dyn Stream>, Error> {
    let authority = uri.authority().ok_or(Error::HttpRequestUriInvalid)?;
    let tls = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
    let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let host = authority.host();
    let candidates: Vec<SocketAddr> = match literal_ip(host) {
        Some(ip) => vec![SocketAddr::new(ip, port)],
        None => {
            if !guard.permits_lookup(host) {
                return Err(Error::HttpRequestDenied);
            }
            match tokio::time::timeout_at(deadline, resolve(host)).await {
                Err(_) => return Err(Error::DnsTimeout),
                Ok(Err(e)) => {
                    return Err(Error::DnsError {
                        rcode: Some(e.to_string()),
                        info_code: None,
                    })
                }
                Ok(Ok(ips)) => ips
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, port))
                    .collect(),
            }
        }
    };
    let mut last = Error::DestinationIpProhibited;
    for addr in candidates {
        if !guard.check(addr, SocketAddrUse::TcpConnect).await {
            continue;
        }
        match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Err(_) => return Err(Error::ConnectionTimeout),
            Ok(Err(e)) => last = Error::Connect(e),
            Ok(Ok(tcp)) if tls => {
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let tls = tokio::time::timeout_at(deadline, tls_connect(host, tcp))
                    .await
                    .map_err(|_| Error::ConnectionTimeout)??;
                return Ok(tls);
            }
            Ok(Ok(tcp)) => return Ok(Box::new(tcp)),
        }
    }
    Err(last)
}

trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Sync + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Sync + Unpin + 'static> Stream for T {}

async fn tls_connect(host: &str, tcp: TcpStream) -> Result<Box<dyn Stream>, Error> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::InternalError(Some(e.to_string())))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|_| Error::HttpRequestUriInvalid)?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(Error::Tls)?;
    Ok(Box::new(stream))
}

/// Send `request` over `stream` with HTTP/1.1 and wait (until `deadline`) for the response
/// head; the body streams afterwards, driven by the returned I/O future.
async fn send(
    stream: Box<dyn Stream>,
    mut request: http::Request<WasiBody>,
    deadline: tokio::time::Instant,
) -> Result<(http::Response<WasiBody>, IoFuture), Error> {
    let (mut sender, conn) = tokio::time::timeout_at(
        deadline,
        hyper::client::conn::http1::handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)??;
    // Origin-form on the wire: the scheme and authority are in the URI only for us (the
    // `Host` header carries the authority).
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()
        .map_err(|_| Error::HttpRequestUriInvalid)?;
    *request.uri_mut() = path;
    // The connection future does the I/O: drive it while waiting for the response head.
    let mut conn = Box::pin(conn);
    let mut conn_ended = false;
    let response = {
        let send = sender.send_request(request);
        tokio::pin!(send);
        loop {
            tokio::select! {
                r = &mut send => break r.map_err(Error::from)?,
                r = &mut conn, if !conn_ended => {
                    r.map_err(Error::from)?;
                    conn_ended = true;
                }
                _ = tokio::time::sleep_until(deadline) => return Err(Error::ConnectionReadTimeout),
            }
        }
    };
    let io: IoFuture = Box::new(async move {
        if conn_ended {
            return Ok(());
        }
        conn.await.map_err(Error::from)
    });
    Ok((response.map(|b| b.map_err(Error::from).boxed_unsync()), io))
}
