//! The subset of Go's `net/url` that httpGet needs: building the hook URL the way the kubelet's
//! `formatURL` does (the path is parsed as a URL reference, scheme and host are then replaced)
//! and resolving a redirect's `Location` against the current URL (`URL.Parse` +
//! `ResolveReference`). No `url` crate: its WHATWG parsing normalises differently from Go
//! (it lowercases hosts, rewrites `\` and drops default ports), and the exact Go behaviour is
//! what users see in messages.

use std::fmt;

/// An absolute http(s) URL as Go's `*url.URL` would hold it after `formatURL`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Url {
    /// Lowercase. Anything but `http`/`https` fails at send time, as in Go.
    pub scheme: String,
    /// Hostname or IP literal, without brackets (Go's `URL.Hostname()`).
    pub host: String,
    /// `None` when a redirect's `Location` named no port: the scheme's default is dialled and
    /// the `Host` header carries no port, as in Go.
    pub port: Option<u16>,
    /// Escaped path as sent (Go's `EscapedPath()`); empty or starting with `/`.
    pub path: String,
    /// Raw query; `Some("")` for a trailing `?` (Go's `ForceQuery`).
    pub query: Option<String>,
    /// Kept for messages only (Go prints it in `Get "<url>"`); never sent.
    pub fragment: Option<String>,
}

impl Url {
    /// The URL of an httpGet action: `formatURL(scheme, host, port, path)`.
    pub fn for_action(scheme: &str, host: &str, port: u16, raw_path: &str) -> Url {
        // An opaque reference (`name:rest`) would give Go an opaque URL and a request line
        // without a leading `/`; we send the whole string as the path instead.
        let r = Reference::parse(raw_path)
            .filter(|r| !r.opaque)
            .unwrap_or_else(|| Reference::unparsed(raw_path));
        Url {
            scheme: scheme.to_owned(),
            host: host.to_owned(),
            port: Some(port),
            path: with_leading_slash(r.path),
            query: r.query,
            fragment: r.fragment,
        }
    }

    /// `host:port` as in Go's `URL.Host`, IPv6 literals bracketed (`net.JoinHostPort`).
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.port {
            Some(p) => format!("{host}:{p}"),
            None => host,
        }
    }

    /// The port to dial: explicit, else the scheme's default.
    pub fn effective_port(&self) -> u16 {
        self.port
            .unwrap_or(if self.scheme == "https" { 443 } else { 80 })
    }

    /// The origin-form request target (Go's `RequestURI()`).
    pub fn request_target(&self) -> String {
        let mut t = if self.path.is_empty() {
            "/".to_owned()
        } else {
            self.path.clone()
        };
        if let Some(q) = &self.query {
            t.push('?');
            t.push_str(q);
        }
        t
    }

    /// Resolve a `Location` header against `self` (Go: `req.URL.Parse(loc)`). `Err` carries
    /// Go's parse error text. The bool is true when `loc` was absolute (had a scheme), which
    /// decides whether a `Host` override survives the redirect.
    pub fn resolve(&self, loc: &str) -> Result<(Url, bool), String> {
        let r = Reference::parse(loc).ok_or_else(|| "invalid URL".to_owned())?;
        let absolute = r.scheme.is_some();
        if r.opaque {
            return Err("opaque URL references are not supported".to_owned());
        }
        let scheme = r.scheme.clone().unwrap_or_else(|| self.scheme.clone());
        if let Some(authority) = &r.authority {
            let (host, port) = split_authority(authority)?;
            return Ok((
                Url {
                    scheme,
                    host,
                    port,
                    path: resolve_path(&r.path, ""),
                    query: r.query,
                    fragment: r.fragment,
                },
                absolute,
            ));
        }
        let mut url = Url {
            scheme,
            fragment: r.fragment.clone(),
            ..self.clone()
        };
        if r.path.is_empty() {
            if r.query.is_some() {
                url.query = r.query;
            } else if r.fragment.is_none() {
                url.fragment = self.fragment.clone();
            }
        } else {
            url.path = resolve_path(&self.path, &r.path);
            url.query = r.query;
        }
        Ok((url, absolute))
    }
}

impl fmt::Display for Url {
    /// Go's `URL.String()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority(), self.path)?;
        if let Some(q) = &self.query {
            write!(f, "?{q}")?;
        }
        if let Some(frag) = &self.fragment {
            write!(f, "#{frag}")?;
        }
        Ok(())
    }
}

/// A parsed URL reference (Go's `url.Parse` result, trimmed to what we use).
#[derive(Debug, Default)]
struct Reference {
    scheme: Option<String>,
    authority: Option<String>,
    opaque: bool,
    /// Escaped path.
    path: String,
    query: Option<String>,
    fragment: Option<String>,
}

impl Reference {
    /// Go's `url.Parse`; `None` where Go returns an error.
    fn parse(raw: &str) -> Option<Reference> {
        let (rest, fragment) = match raw.split_once('#') {
            Some((r, f)) => (r, Some(f.to_owned())),
            None => (raw, None),
        };
        if rest.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return None; // net/url: invalid control character in URL
        }
        let mut out = Reference {
            fragment,
            ..Reference::default()
        };
        let mut rest = match get_scheme(rest)? {
            (Some(s), r) => {
                out.scheme = Some(s.to_ascii_lowercase());
                r
            }
            (None, r) => r,
        };
        if let Some((r, q)) = rest.split_once('?') {
            out.query = Some(escape_query(q));
            rest = r;
        }
        if !rest.starts_with('/') {
            if out.scheme.is_some() {
                out.opaque = true;
                out.path = rest.to_owned();
                return Some(out);
            }
            let first = rest.split('/').next().unwrap_or("");
            if first.contains(':') {
                return None; // first path segment in URL cannot contain colon
            }
        }
        if (out.scheme.is_some() || !rest.starts_with("///")) && rest.starts_with("//") {
            let after = &rest[2..];
            let end = after.find('/').unwrap_or(after.len());
            out.authority = Some(after[..end].to_owned());
            rest = &after[end..];
        }
        if !valid_escapes(rest) {
            return None; // invalid URL escape
        }
        out.path = if valid_encoded(rest) {
            rest.to_owned()
        } else {
            escape_path(&unescape(rest))
        };
        Some(out)
    }

    /// What `formatURL` does when `url.Parse(path)` fails: the whole string becomes the path,
    /// escaped on output.
    fn unparsed(raw: &str) -> Reference {
        Reference {
            path: escape_path(raw.as_bytes()),
            ..Reference::default()
        }
    }
}

fn with_leading_slash(path: String) -> String {
    if path.is_empty() || path.starts_with('/') {
        path
    } else {
        format!("/{path}")
    }
}

/// Go's `getScheme`: `Err` (here `None`) for a leading `:`.
fn get_scheme(raw: &str) -> Option<(Option<&str>, &str)> {
    for (i, c) in raw.bytes().enumerate() {
        match c {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' if i > 0 => {}
            b':' if i == 0 => return None, // missing protocol scheme
            b':' => return Some((Some(&raw[..i]), &raw[i + 1..])),
            _ => return Some((None, raw)),
        }
    }
    Some((None, raw))
}

/// `host[:port]` (userinfo dropped, IPv6 in brackets) into hostname and port.
fn split_authority(authority: &str) -> Result<(String, Option<u16>), String> {
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, tail) = v6
            .split_once(']')
            .ok_or_else(|| "missing ']' in host".to_owned())?;
        match tail {
            "" => (h, None),
            t if t.starts_with(':') => (h, Some(&t[1..])),
            _ => return Err(format!("invalid port {:?} after host", tail)),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let port = match port {
        None | Some("") => None,
        Some(p) => Some(
            p.parse::<u16>()
                .map_err(|_| format!("invalid port \":{p}\" after host"))?,
        ),
    };
    Ok((host.to_owned(), port))
}

/// Go's `resolvePath` (RFC 3986 §5.2 merge + remove_dot_segments).
fn resolve_path(base: &str, reference: &str) -> String {
    let full = if reference.is_empty() {
        base.to_owned()
    } else if !reference.starts_with('/') {
        let i = base.rfind('/').map_or(0, |i| i + 1);
        format!("{}{}", &base[..i], reference)
    } else {
        reference.to_owned()
    };
    if full.is_empty() {
        return String::new();
    }
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = full.split('/').collect();
    let last = segments.len() - 1;
    let mut trailing = false;
    for (i, seg) in segments.iter().enumerate() {
        trailing = false;
        match *seg {
            "." => trailing = i == last,
            ".." => {
                if out.len() > 1 {
                    out.pop();
                }
                trailing = i == last;
            }
            s => {
                if i == 0 {
                    out.push(""); // leading empty segment: absolute path
                    if !s.is_empty() {
                        out.push(s);
                    }
                } else {
                    out.push(s);
                }
            }
        }
    }
    let mut path = out.join("/");
    if trailing && !path.ends_with('/') {
        path.push('/');
    }
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    path
}

/// Go's `shouldEscape(c, encodePath)`.
fn should_escape_path(c: u8) -> bool {
    !(c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'-' | b'_'
                | b'.'
                | b'~'
                | b'$'
                | b'&'
                | b'+'
                | b','
                | b'/'
                | b':'
                | b';'
                | b'='
                | b'@'
        ))
}

/// Go's `validEncoded(s, encodePath)`.
fn valid_encoded(s: &str) -> bool {
    s.bytes().all(|c| {
        matches!(
            c,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'['
                | b']'
                | b'%'
        ) || !should_escape_path(c)
    })
}

fn valid_escapes(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if i + 2 >= b.len() {
                return false;
            }
            if !(b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit()) {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(hex, 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn escape_path(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s {
        if should_escape_path(c) {
            out.push_str(&format!("%{c:02X}"));
        } else {
            out.push(c as char);
        }
    }
    out
}

/// Go sends `RawQuery` byte for byte; the `http` crate refuses a few bytes in a request
/// target, so those (controls, space, non-ASCII and `"<>\^`{|}`) are percent-encoded.
fn escape_query(q: &str) -> String {
    let mut out = String::with_capacity(q.len());
    for &c in q.as_bytes() {
        if c <= 0x20 || c >= 0x7f || b"\"<>\\^`{|}".contains(&c) {
            out.push_str(&format!("%{c:02X}"));
        } else {
            out.push(c as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action_url(path: &str) -> String {
        Url::for_action("http", "10.0.0.1", 80, path).to_string()
    }

    #[test]
    fn builds_like_format_url() {
        assert_eq!(action_url("/ready"), "http://10.0.0.1:80/ready");
        assert_eq!(action_url("ready"), "http://10.0.0.1:80/ready");
        assert_eq!(action_url(""), "http://10.0.0.1:80");
        assert_eq!(action_url("/a?b=c&d"), "http://10.0.0.1:80/a?b=c&d");
        assert_eq!(action_url("?x=1"), "http://10.0.0.1:80?x=1");
        assert_eq!(action_url("/a#frag"), "http://10.0.0.1:80/a#frag");
        assert_eq!(action_url("/a b"), "http://10.0.0.1:80/a%20b");
        assert_eq!(action_url("/a%2Fb"), "http://10.0.0.1:80/a%2Fb");
        assert_eq!(action_url("/%zz?q"), "http://10.0.0.1:80/%25zz%3Fq");
        assert_eq!(action_url("//other:9/x"), "http://10.0.0.1:80/x");
        assert_eq!(action_url("http://other/x?y"), "http://10.0.0.1:80/x?y");
        let v6 = Url::for_action("https", "::1", 8443, "/");
        assert_eq!(v6.to_string(), "https://[::1]:8443/");
        assert_eq!(v6.authority(), "[::1]:8443");
        assert_eq!(Url::for_action("http", "h", 1, "").request_target(), "/");
        assert_eq!(
            Url::for_action("http", "h", 1, "/p?").request_target(),
            "/p?"
        );
    }

    #[test]
    fn resolves_locations() {
        let base = Url::for_action("http", "127.0.0.1", 8080, "/a/b?q");
        let r = |loc: &str| base.resolve(loc).map(|(u, abs)| (u.to_string(), abs));
        assert_eq!(r("/x").unwrap(), ("http://127.0.0.1:8080/x".into(), false));
        assert_eq!(r("c").unwrap().0, "http://127.0.0.1:8080/a/c");
        assert_eq!(r("../c?z").unwrap().0, "http://127.0.0.1:8080/c?z");
        assert_eq!(r("?z").unwrap().0, "http://127.0.0.1:8080/a/b?z");
        assert_eq!(r("./").unwrap().0, "http://127.0.0.1:8080/a/");
        assert_eq!(
            r("https://127.0.0.1:9/s").unwrap(),
            ("https://127.0.0.1:9/s".into(), true)
        );
        assert_eq!(r("//localhost/p").unwrap().0, "http://localhost/p");
        let (u, _) = base.resolve("HTTP://[::1]:7/").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.scheme.as_str()),
            ("::1", Some(7), "http")
        );
        assert!(base.resolve("http://h:x/").is_err());
        assert!(base.resolve(":nope").is_err());
    }
}
