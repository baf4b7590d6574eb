//! Splitting a URL the way `wasi:http` wants it.

/// A URL split the way `wasi:http` wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Url {
    pub(super) https: bool,
    pub(super) authority: String,
    pub(super) path_with_query: String,
}

impl Url {
    pub(super) fn parse(url: &str) -> Result<Url, String> {
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("contains whitespace or control characters".into());
        }
        let (scheme, rest) = url
            .split_once("://")
            .ok_or("expected http://HOST[:PORT][/PATH]")?;
        let https = match &*scheme.to_ascii_lowercase() {
            "http" => false,
            "https" => true,
            other => return Err(format!("unsupported scheme {other:?} (http or https)")),
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let (authority, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        if authority.contains('@') {
            return Err("user info is not supported (send an authorization header)".into());
        }
        let (host, port) = match authority.rfind(':') {
            Some(i) if !authority[i..].contains(']') => {
                (&authority[..i], Some(&authority[i + 1..]))
            }
            _ => (authority, None),
        };
        if host.is_empty() || host == "[]" {
            return Err("no host".into());
        }
        if host.starts_with('[') != host.ends_with(']') {
            return Err("unbalanced brackets around an IPv6 address".into());
        }
        if let Some(p) = port {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.parse::<u16>().is_err() {
                return Err(format!("invalid port {p:?}"));
            }
        }
        let path_with_query = match path.chars().next() {
            None => "/".to_string(),
            Some('?') => format!("/{path}"),
            Some(_) => path.to_string(),
        };
        Ok(Url {
            https,
            authority: authority.to_string(),
            path_with_query,
        })
    }
}
