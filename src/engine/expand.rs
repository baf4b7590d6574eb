//! Kubernetes `$(VAR)` expansion of `command`, `args` and `env` values
//! (`k8s.io/kubernetes/third_party/forked/golang/expansion`).
//!
//! `$(NAME)` is replaced by the variable's value when it is defined, and left as written when
//! it is not; `$$` is an escaped `$`; a `$` followed by anything else is kept as is.

/// Expand `input` with `lookup`.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('(') {
            match body.find(')') {
                Some(end) => {
                    let name = &body[..end];
                    match lookup(name) {
                        Some(v) => out.push_str(&v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &body[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = body;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Resolve a container's `env` list in order: each value may refer to the ones before it
/// (Kubernetes semantics: only earlier entries are visible).
pub fn resolve_env(env: &[(String, Option<String>)]) -> Vec<(String, String)> {
    let mut resolved: Vec<(String, String)> = Vec::with_capacity(env.len());
    for (name, value) in env {
        let value = expand(value.as_deref().unwrap_or(""), |n| lookup(&resolved, n));
        resolved.retain(|(k, _)| k != name);
        resolved.push((name.clone(), value));
    }
    resolved
}

/// The value of `name` in a resolved env list (the last definition wins).
pub fn lookup(env: &[(String, String)], name: &str) -> Option<String> {
    env.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<(String, String)> {
        vec![("A".into(), "1".into()), ("B".into(), "two".into())]
    }

    #[test]
    fn expands_like_kubernetes() {
        let e = env();
        let x = |s: &str| expand(s, |n| lookup(&e, n));
        assert_eq!(x("$(A)-$(B)"), "1-two");
        assert_eq!(x("$(MISSING)"), "$(MISSING)");
        assert_eq!(x("$$(A)"), "$(A)");
        assert_eq!(x("$$$(A)"), "$1");
        assert_eq!(x("cost $5"), "cost $5");
        assert_eq!(x("$(A"), "$(A");
        assert_eq!(x("end $"), "end $");
        assert_eq!(x("ünïcode $(B)"), "ünïcode two");
    }

    #[test]
    fn env_sees_only_earlier_entries() {
        let env = resolve_env(&[
            ("X".into(), Some("$(Y)".into())),
            ("Y".into(), Some("y".into())),
            ("Z".into(), Some("$(Y)-$(X)".into())),
        ]);
        assert_eq!(lookup(&env, "X").unwrap(), "$(Y)");
        assert_eq!(lookup(&env, "Z").unwrap(), "y-$(Y)");
    }
}
