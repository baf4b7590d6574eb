//! A hook's network policy (`wasmhook.dev/hook-network`, `--hook-network`): what it says and
//! what it permits. Plain data and pure functions: parsing, display, and the verdict for one
//! address or name. Enforcement (the socket checks, name lookups and HTTP requests of a running
//! hook) lives in `wasm::network`, which asks these functions.
//!
//! The spellings:
//!
//! | value | the hook may reach |
//! |---|---|
//! | `deny` (default) | nothing: no sockets, no name lookup, no HTTP |
//! | `pod` | the pod's own addresses, any port (see [`PodScope`]); of names only `localhost` |
//! | `allow` | everything |
//! | a list | exactly its entries, comma-separated (below) |
//!
//! List entries: `HOST[:PORT]` or `CIDR[:PORT]`; IPv6 in brackets when a port follows
//! (`[::1]:8080`, `[fd00::/8]:*`); `*` for any port; no port is any port. `HOST` is an IP
//! address or a DNS name (`localhost:8080`, `registry.local`); the keyword `pod` is an entry too
//! (`pod,10.0.0.53:53`). A name entry permits looking that name up and connecting to the
//! addresses it resolves to, on the entry's port; no other name may be looked up.
//!
//! **Invariant:** an address is permitted only by an entry that names it (or its network, or
//! the pod) with a matching port; nothing is permitted by default. IPv4-mapped IPv6 addresses
//! (`::ffff:127.0.0.1`) are judged as the IPv4 address they carry, so a dual-stack socket cannot
//! slip past an IPv4 rule.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;

/// A hook's network policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum HookNetwork {
    /// No network at all. The default.
    #[default]
    Deny,
    /// The pod's own addresses, any port.
    Pod,
    /// Everything the node can reach.
    Allow,
    /// Exactly these entries (never empty).
    List(Vec<Entry>),
}

/// One allow-list entry: a target and its port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub target: Target,
    /// `None`: any port.
    pub port: Option<u16>,
}

/// What an allow-list entry names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The pod's own addresses (the `pod` keyword).
    Pod,
    /// An address (a `/32` or `/128` network) or a CIDR network.
    Net(IpNet),
    /// A DNS name, lower-case, without a trailing dot.
    Name(String),
}

/// Which addresses are "the pod's own".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodScope {
    /// The pod shares the node's network (the process backend): exactly `127.0.0.1` and
    /// `::1`, not the rest of `127.0.0.0/8` nor the node's other addresses.
    HostLoopback,
    /// The pod has a network namespace of its own (runc backend, CRI proxy): its loopback
    /// (`127.0.0.0/8`, `::1`) and every address assigned inside it (the pod IP), which the
    /// caller decides ([`HookNetwork::permits`]'s `is_local`).
    Namespace,
}

impl HookNetwork {
    /// The accepted keywords, for error messages.
    pub const KEYWORDS: [&'static str; 3] = ["deny", "pod", "allow"];

    /// Whether the hook gets any network at all (sockets, name lookup, HTTP).
    pub fn is_enabled(&self) -> bool {
        *self != HookNetwork::Deny
    }

    /// Whether the hook may talk to `addr`. `is_local` answers, for [`PodScope::Namespace`],
    /// whether an address is assigned inside the pod's namespace; it is not asked for
    /// loopback addresses nor under [`PodScope::HostLoopback`].
    pub fn permits(
        &self,
        addr: SocketAddr,
        scope: PodScope,
        is_local: &dyn Fn(IpAddr) -> bool,
    ) -> bool {
        let ip = addr.ip().to_canonical();
        let is_pod = || is_pod_address(ip, scope, is_local);
        match self {
            HookNetwork::Deny => false,
            HookNetwork::Allow => true,
            HookNetwork::Pod => is_pod(),
            HookNetwork::List(entries) => entries.iter().any(|e| {
                port_matches(e.port, addr.port())
                    && match &e.target {
                        Target::Pod => is_pod(),
                        Target::Net(net) => net.contains(&ip),
                        Target::Name(_) => false,
                    }
            }),
        }
    }

    /// Whether the hook may look `name` up (wasi:sockets `ip-name-lookup`, or the host part of
    /// an HTTP request's URL). `allow` permits every name; a list its name entries (on any of
    /// their ports); `pod` (alone or as an entry) only `localhost`, which is the loopback by
    /// definition (RFC 6761) and asks no DNS server; `deny` none. IP literals are not names:
    /// they are judged by [`HookNetwork::permits`].
    pub fn permits_name(&self, name: &str) -> bool {
        let localhost = normalize_name(name) == "localhost";
        match self {
            HookNetwork::Allow => true,
            HookNetwork::Pod => localhost,
            HookNetwork::List(entries) => {
                self.name_ports(name).next().is_some()
                    || (localhost && entries.iter().any(|e| e.target == Target::Pod))
            }
            HookNetwork::Deny => false,
        }
    }

    /// The ports the name entries for `name` allow (`None`: any port).
    pub fn name_ports<'a>(&'a self, name: &str) -> impl Iterator<Item = Option<u16>> + 'a {
        let name = normalize_name(name);
        let entries = match self {
            HookNetwork::List(entries) => entries.as_slice(),
            _ => &[],
        };
        entries.iter().filter_map(move |e| match &e.target {
            Target::Name(n) if *n == name => Some(e.port),
            _ => None,
        })
    }

    /// The names of the list's name entries (each once).
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = match self {
            HookNetwork::List(entries) => entries
                .iter()
                .filter_map(|e| match &e.target {
                    Target::Name(n) => Some(n.as_str()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        names.sort_unstable();
        names.dedup();
        names
    }
}

/// `ip` is one of the pod's own addresses.
fn is_pod_address(ip: IpAddr, scope: PodScope, is_local: &dyn Fn(IpAddr) -> bool) -> bool {
    match scope {
        PodScope::HostLoopback => {
            ip == IpAddr::V4(Ipv4Addr::LOCALHOST) || ip == IpAddr::V6(Ipv6Addr::LOCALHOST)
        }
        PodScope::Namespace => ip.is_loopback() || is_local(ip),
    }
}

fn port_matches(rule: Option<u16>, port: u16) -> bool {
    rule.is_none_or(|p| p == port)
}

fn normalize_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Why a policy did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A lone word that is not a keyword (`alow`, `none`): most likely a misspelt keyword, so
    /// it is not taken as a one-name list (write `NAME:*` for that).
    #[error("not one of {:?}", HookNetwork::KEYWORDS)]
    UnknownKeyword,
    /// An allow-list entry is malformed: which one and why.
    #[error("{0}")]
    BadEntry(String),
}

impl FromStr for HookNetwork {
    type Err = ParseError;

    /// Parse a policy. The error says which entry is wrong and why, for the caller to put
    /// behind a field path.
    fn from_str(value: &str) -> Result<Self, ParseError> {
        match value.trim() {
            "deny" => return Ok(HookNetwork::Deny),
            "pod" => return Ok(HookNetwork::Pod),
            "allow" => return Ok(HookNetwork::Allow),
            v if !v.contains([',', ':', '.', '/']) => return Err(ParseError::UnknownKeyword),
            _ => {}
        }
        let mut entries = Vec::new();
        for raw in value.split(',') {
            let raw = raw.trim();
            let entry = parse_entry(raw)
                .map_err(|why| ParseError::BadEntry(format!("entry {raw:?}: {why}")))?;
            entries.push(entry);
        }
        Ok(HookNetwork::List(entries))
    }
}

fn parse_entry(raw: &str) -> Result<Entry, String> {
    if raw.is_empty() {
        return Err("empty entry (a stray comma?)".into());
    }
    if matches!(raw, "deny" | "allow") {
        return Err(format!("{raw:?} is a policy of its own, not a list entry"));
    }
    let (host, port) = split_host_port(raw)?;
    let port = match port {
        None | Some("*") => None,
        Some(p) => Some(parse_port(p)?),
    };
    let target = parse_target(host)?;
    Ok(Entry { target, port })
}

/// `[v6]:port`, `[v6/len]:port`, bare v6 (no port), `host:port`, `host`.
fn split_host_port(raw: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(rest) = raw.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or("an opening '[' without its ']'")?;
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err(format!("unexpected {after:?} after ']' (expected ':PORT')")),
            },
        };
    }
    match raw.matches(':').count() {
        0 => Ok((raw, None)),
        1 => {
            let (host, port) = raw.split_once(':').expect("one ':'");
            Ok((host, Some(port)))
        }
        // More than one ':' without brackets: a bare IPv6 address or network, any port.
        _ => Ok((raw, None)),
    }
}

fn parse_port(p: &str) -> Result<u16, String> {
    match p.parse::<u16>() {
        Ok(0) => Err("port 0 is not a port a hook can reach".into()),
        Ok(n) if p.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(format!("{p:?} is not a port (1-65535 or *)")),
    }
}

fn parse_target(host: &str) -> Result<Target, String> {
    if host.is_empty() {
        return Err("no host".into());
    }
    if host == "pod" {
        return Ok(Target::Pod);
    }
    if host.contains('/') {
        let net = IpNet::from_str(host).map_err(|_| format!("{host:?} is not a CIDR network"))?;
        if net != net.trunc() {
            return Err(format!(
                "{host:?} has host bits set (the network is {})",
                net.trunc()
            ));
        }
        return Ok(Target::Net(net));
    }
    if let Ok(ip) = IpAddr::from_str(host) {
        return Ok(Target::Net(IpNet::from(ip.to_canonical())));
    }
    if host.contains(':') {
        return Err(format!(
            "{host:?} is not an IPv6 address (write [ADDRESS]:PORT when a port follows)"
        ));
    }
    if is_dns_name(host) {
        return Ok(Target::Name(normalize_name(host)));
    }
    Err(format!(
        "{host:?} is neither an IP address, a CIDR network nor a DNS name"
    ))
}

/// RFC 1123 host names: labels of letters, digits and inner hyphens, up to 253 bytes; not
/// all-numeric (so `10.0.0` is a typo, not a name).
fn is_dns_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(label_ok)
        && !host.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

impl fmt::Display for HookNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HookNetwork::Deny => f.write_str("deny"),
            HookNetwork::Pod => f.write_str("pod"),
            HookNetwork::Allow => f.write_str("allow"),
            HookNetwork::List(entries) => {
                for (i, e) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{e}")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = match &self.target {
            Target::Pod => "pod".to_string(),
            Target::Net(net) if net.prefix_len() == net.max_prefix_len() => net.addr().to_string(),
            Target::Net(net) => net.to_string(),
            Target::Name(n) => n.clone(),
        };
        let v6 = matches!(&self.target, Target::Net(IpNet::V6(_)));
        match (self.port, v6) {
            (None, _) => f.write_str(&host),
            (Some(p), true) => write!(f, "[{host}]:{p}"),
            (Some(p), false) => write!(f, "{host}:{p}"),
        }
    }
}

impl serde::Serialize for HookNetwork {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> HookNetwork {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }
    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }
    fn nothing_local(_: IpAddr) -> bool {
        false
    }

    #[test]
    fn keywords() {
        assert_eq!(p("deny"), HookNetwork::Deny);
        assert_eq!(p("pod"), HookNetwork::Pod);
        assert_eq!(p("allow"), HookNetwork::Allow);
        assert!(!HookNetwork::default().is_enabled());
    }

    #[test]
    fn entries_parse_and_display_round_trip() {
        for s in [
            "127.0.0.1:8080",
            "[::1]:8080",
            "fd00::/8",
            "10.0.0.0/8:443",
            "localhost:8080",
            "registry.local",
            "pod,10.0.0.53:53",
            "::1",
        ] {
            assert_eq!(p(s).to_string(), s, "{s}");
        }
        // `*` is any port, like no port.
        assert_eq!(p("[fd00::/8]:*"), p("fd00::/8"));
        assert_eq!(p("LocalHost.:80").to_string(), "localhost:80");
    }

    #[test]
    fn malformed_entries_say_which_and_why() {
        for (s, why) in [
            ("127.0.0.1:8080,", "empty entry"),
            ("127.0.0.1:0", "port 0"),
            ("127.0.0.1:http", "not a port"),
            ("127.0.0.1:70000", "not a port"),
            ("::1::8080", "not an IPv6 address"),
            ("[::1:8080", "without its ']'"),
            ("[::1]8080", "unexpected"),
            ("10.0.0.1/8", "host bits set"),
            ("10.0.0.0/33", "not a CIDR"),
            ("10.0.0", "neither"),
            ("bad_name:80", "neither"),
            ("pod,allow", "policy of its own"),
        ] {
            let err = s.parse::<HookNetwork>().unwrap_err().to_string();
            assert!(err.contains(why), "{s:?}: {err}");
        }
        // A lone word is a misspelt keyword, not a one-name list.
        for s in ["", "alow", "none", "localhost"] {
            assert_eq!(
                s.parse::<HookNetwork>(),
                Err(ParseError::UnknownKeyword),
                "{s:?}"
            );
        }
        assert_eq!(p("localhost:*").names(), ["localhost"]);
    }

    #[test]
    fn pod_on_the_host_network_is_exactly_the_two_loopback_addresses() {
        let pod = p("pod");
        let host = PodScope::HostLoopback;
        assert!(pod.permits(sa("127.0.0.1:1"), host, &nothing_local));
        assert!(pod.permits(sa("[::1]:65535"), host, &nothing_local));
        assert!(pod.permits(sa("[::ffff:127.0.0.1]:80"), host, &nothing_local));
        assert!(!pod.permits(sa("127.0.0.2:80"), host, &nothing_local));
        assert!(!pod.permits(sa("10.1.2.3:80"), host, &nothing_local));
        // `localhost` is the loopback by definition, no DNS; other names are refused.
        assert!(pod.permits_name("localhost"));
        assert!(p("pod,10.0.0.53:53").permits_name("LocalHost."));
        assert!(!pod.permits_name("example.com"));
        assert!(!pod.permits_name("localhost.example.com"));
    }

    #[test]
    fn pod_in_a_namespace_is_its_loopback_and_its_local_addresses() {
        let pod = p("pod");
        let ns = PodScope::Namespace;
        let pod_ip: IpAddr = "10.88.0.7".parse().unwrap();
        let local = move |ip: IpAddr| ip == pod_ip;
        assert!(pod.permits(sa("127.0.0.2:80"), ns, &local));
        assert!(pod.permits(sa("10.88.0.7:8080"), ns, &local));
        assert!(!pod.permits(sa("10.88.0.8:8080"), ns, &local));
    }

    #[test]
    fn lists_permit_exactly_their_entries() {
        let list = p("127.0.0.1:8080,[fd00::/8]:*,10.0.0.0/8:443,localhost:9901");
        let host = PodScope::HostLoopback;
        let ok = |s: &str| list.permits(sa(s), host, &nothing_local);
        assert!(ok("127.0.0.1:8080"));
        assert!(!ok("127.0.0.1:8081"));
        assert!(ok("[fd12::1]:1"));
        assert!(!ok("[fe80::1]:1"));
        assert!(ok("10.200.0.1:443"));
        assert!(!ok("10.200.0.1:80"));
        // A mapped address is judged as the IPv4 one.
        assert!(ok("[::ffff:127.0.0.1]:8080"));
        // Names permit lookups, never addresses by themselves.
        assert!(!ok("[::1]:9901"));
        assert!(list.permits_name("LOCALHOST."));
        assert!(!list.permits_name("example.com"));
        assert_eq!(
            list.name_ports("localhost").collect::<Vec<_>>(),
            [Some(9901)]
        );
        assert_eq!(list.names(), ["localhost"]);
    }

    #[test]
    fn allow_and_deny() {
        let any = sa("192.0.2.1:1");
        assert!(p("allow").permits(any, PodScope::Namespace, &nothing_local));
        assert!(p("allow").permits_name("example.com"));
        assert!(!p("deny").permits(sa("127.0.0.1:1"), PodScope::HostLoopback, &nothing_local));
        assert!(!p("deny").permits_name("localhost"));
    }
}
