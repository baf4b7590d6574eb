//! `netprobe`: try what the pod's `wasmhook.dev/hook-network` policy lets a hook reach, and
//! print one line per attempt. A tool for operators writing a policy, and the guest of
//! wasmhook's own network tests.
//!
//! ```text
//! command: ["netprobe.component.wasm", "PROBE", ...]
//! ```
//!
//! | probe | does | prints |
//! |---|---|---|
//! | `tcp:ADDR:PORT` (`tcp:[::1]:80`) | a `wasi:sockets` TCP connect | `tcp ADDR:PORT ok` or `... err <error-code>` |
//! | `bind:ADDR:PORT` | a TCP bind + listen | `bind ADDR:PORT ok` / `err <error-code>` |
//! | `lookup:NAME` | `ip-name-lookup` | `lookup NAME ok A,B` / `err <error-code>` |
//! | `http:URL` | one GET (`wasi:http`), no redirects | `http URL <status>` / `err <error-code>` |
//! | `follow:URL` | GETs following up to 5 redirects, each a new request | `http URL <status>` per hop |
//!
//! Always exits 0 once every probe ran (the lines are the result); 2 for a malformed probe.
//! It needs no hook context, so `wasmhook hook run` runs it as it is.

use std::net::SocketAddr;

use hooks_sdk::http;
use wasip2::sockets::network::{
    ErrorCode, IpAddress, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress,
};
use wasip2::sockets::{instance_network, ip_name_lookup, tcp_create_socket};

fn main() {
    for probe in std::env::args().skip(1) {
        match run(&probe) {
            Ok(lines) => println!("{lines}"),
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(2);
            }
        }
    }
}

fn run(probe: &str) -> Result<String, String> {
    let malformed = |why: String| format!("probe {probe:?}: {why}");
    let Some((kind, target)) = probe.split_once(':') else {
        return Err(malformed("expected KIND:TARGET".into()));
    };
    let addr = || {
        target
            .parse::<SocketAddr>()
            .map_err(|e| malformed(e.to_string()))
    };
    Ok(match kind {
        "tcp" => format!("tcp {target} {}", result(connect(addr()?))),
        "bind" => format!("bind {target} {}", result(listen(addr()?))),
        "lookup" => match lookup(target) {
            Ok(ips) => format!("lookup {target} ok {}", ips.join(",")),
            Err(e) => format!("lookup {target} err {}", e.name()),
        },
        "http" => get(target).0,
        "follow" => {
            let mut lines = Vec::new();
            let mut url = target.to_string();
            for _ in 0..=5 {
                let (line, next) = get(&url);
                lines.push(line);
                match next {
                    Some(next) => url = next,
                    None => break,
                }
            }
            lines.join("\n")
        }
        _ => {
            return Err(malformed(
                "unknown kind (tcp, bind, lookup, http, follow)".into(),
            ))
        }
    })
}

fn result(r: Result<(), ErrorCode>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(e) => format!("err {}", e.name()),
    }
}

/// One GET: the line to print, and the redirect target when the answer is a redirect.
fn get(url: &str) -> (String, Option<String>) {
    match http::get(url) {
        Ok(r) => {
            let next = match r.status() {
                301 | 302 | 303 | 307 | 308 => r.header("location").map(str::to_string),
                _ => None,
            };
            (format!("http {url} {}", r.status()), next)
        }
        Err(e) => (
            format!("http {url} err {}", e.code().unwrap_or("other")),
            None,
        ),
    }
}

fn socket_address(addr: SocketAddr) -> (IpAddressFamily, IpSocketAddress) {
    match addr {
        SocketAddr::V4(a) => {
            let [a0, a1, a2, a3] = a.ip().octets();
            let address = (a0, a1, a2, a3);
            (
                IpAddressFamily::Ipv4,
                IpSocketAddress::Ipv4(Ipv4SocketAddress {
                    port: a.port(),
                    address,
                }),
            )
        }
        SocketAddr::V6(a) => {
            let s = a.ip().segments();
            let address = (s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]);
            (
                IpAddressFamily::Ipv6,
                IpSocketAddress::Ipv6(Ipv6SocketAddress {
                    port: a.port(),
                    flow_info: 0,
                    address,
                    scope_id: 0,
                }),
            )
        }
    }
}

fn connect(addr: SocketAddr) -> Result<(), ErrorCode> {
    let network = instance_network::instance_network();
    let (family, remote) = socket_address(addr);
    let socket = tcp_create_socket::create_tcp_socket(family)?;
    socket.start_connect(&network, remote)?;
    let ready = socket.subscribe();
    loop {
        match socket.finish_connect() {
            Ok(_streams) => return Ok(()),
            Err(ErrorCode::WouldBlock) => ready.block(),
            Err(e) => return Err(e),
        }
    }
}

fn listen(addr: SocketAddr) -> Result<(), ErrorCode> {
    let network = instance_network::instance_network();
    let (family, local) = socket_address(addr);
    let socket = tcp_create_socket::create_tcp_socket(family)?;
    let ready = socket.subscribe();
    socket.start_bind(&network, local)?;
    loop {
        match socket.finish_bind() {
            Ok(()) => break,
            Err(ErrorCode::WouldBlock) => ready.block(),
            Err(e) => return Err(e),
        }
    }
    socket.start_listen()?;
    loop {
        match socket.finish_listen() {
            Ok(()) => return Ok(()),
            Err(ErrorCode::WouldBlock) => ready.block(),
            Err(e) => return Err(e),
        }
    }
}

fn lookup(name: &str) -> Result<Vec<String>, ErrorCode> {
    let network = instance_network::instance_network();
    let stream = ip_name_lookup::resolve_addresses(&network, name)?;
    let ready = stream.subscribe();
    let mut out = Vec::new();
    loop {
        match stream.resolve_next_address() {
            Ok(Some(IpAddress::Ipv4((a, b, c, d)))) => out.push(format!("{a}.{b}.{c}.{d}")),
            Ok(Some(IpAddress::Ipv6(s))) => {
                let ip = std::net::Ipv6Addr::new(s.0, s.1, s.2, s.3, s.4, s.5, s.6, s.7);
                out.push(ip.to_string());
            }
            Ok(None) => return Ok(out),
            Err(ErrorCode::WouldBlock) => ready.block(),
            Err(e) => return Err(e),
        }
    }
}
