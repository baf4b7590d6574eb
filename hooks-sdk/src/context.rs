//! The hook's context, read from argv and the environment.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::HookError;

/// Environment variable with the pod name, always set by wasmhook.
pub const ENV_POD: &str = "WASMHOOK_POD";
/// Environment variable with the container name, always set by wasmhook.
pub const ENV_CONTAINER: &str = "WASMHOOK_CONTAINER";
/// Environment variable with the hook kind, `postStart` or `preStop`, always set by wasmhook.
pub const ENV_HOOK: &str = "WASMHOOK_HOOK";
/// Environment variable with the pod's namespace. The contract reserves more `WASMHOOK_*`
/// variables (namespace, UID) without promising them yet: [`Context::namespace`] is `None` until
/// the host sets this one.
pub const ENV_NAMESPACE: &str = "WASMHOOK_NAMESPACE";

/// Which lifecycle hook is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookKind {
    /// `lifecycle.postStart`: runs right after the container is started.
    PostStart,
    /// `lifecycle.preStop`: runs before the container is sent its stop signal.
    PreStop,
}

impl HookKind {
    /// The spelling used in manifests and in `WASMHOOK_HOOK`: `postStart` or `preStop`.
    pub fn as_str(self) -> &'static str {
        match self {
            HookKind::PostStart => "postStart",
            HookKind::PreStop => "preStop",
        }
    }
}

impl fmt::Display for HookKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for HookKind {
    type Err = HookError;

    /// Accepts exactly `postStart` or `preStop` (case-sensitive, like the manifest fields).
    fn from_str(s: &str) -> Result<Self, HookError> {
        match s {
            "postStart" => Ok(HookKind::PostStart),
            "preStop" => Ok(HookKind::PreStop),
            other => Err(HookError::new(format!(
                "{ENV_HOOK} is {other:?}, expected \"postStart\" or \"preStop\""
            ))),
        }
    }
}

/// Where the hook runs and what it was asked to do.
///
/// Built once by [`crate::main`] (or [`Context::from_env`]) from the process arguments and
/// environment that wasmhook gives the module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pod: String,
    namespace: Option<String>,
    container: String,
    kind: HookKind,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Context {
    /// Reads the context of the running hook from `std::env::args_os` and `std::env::vars_os`
    /// (non-UTF-8 bytes are replaced with U+FFFD). Fails if `WASMHOOK_POD`, `WASMHOOK_CONTAINER`
    /// or `WASMHOOK_HOOK` is missing or `WASMHOOK_HOOK` is neither `postStart` nor `preStop`,
    /// which means the module is not running as a wasmhook hook.
    pub fn from_env() -> Result<Self, HookError> {
        let args = std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let env = std::env::vars_os()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.to_string_lossy().into_owned(),
                )
            })
            .collect();
        Self::from_parts(args, env)
    }

    /// Builds a context from an explicit argv and environment, with the same rules as
    /// [`Context::from_env`]. Useful in tests and in typed (component) hooks, whose context
    /// record carries the same argv and environment.
    pub fn from_parts(args: Vec<String>, env: Vec<(String, String)>) -> Result<Self, HookError> {
        let lookup = |name: &str| {
            env.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let required = |name: &str| {
            lookup(name).ok_or_else(|| {
                HookError::new(format!(
                    "{name} is not set: this module expects to run as a wasmhook exec hook"
                ))
            })
        };
        let pod = required(ENV_POD)?;
        let container = required(ENV_CONTAINER)?;
        let kind = required(ENV_HOOK)?.parse()?;
        let namespace = lookup(ENV_NAMESPACE).filter(|ns| !ns.is_empty());
        Ok(Context {
            pod,
            namespace,
            container,
            kind,
            args,
            env,
        })
    }

    /// The pod's name (`WASMHOOK_POD`).
    pub fn pod(&self) -> &str {
        &self.pod
    }

    /// The pod's namespace, if the host provides it (`WASMHOOK_NAMESPACE`, see [`ENV_NAMESPACE`]).
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The container's name (`WASMHOOK_CONTAINER`).
    pub fn container(&self) -> &str {
        &self.container
    }

    /// Which hook is running (`WASMHOOK_HOOK`).
    pub fn kind(&self) -> HookKind {
        self.kind
    }

    /// The whole argv: `exec.command` as written in the manifest, `args()[0]` being the module.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// `argv[0]`, the module name as written in the manifest (empty if argv is empty).
    pub fn program(&self) -> &str {
        self.args.first().map(String::as_str).unwrap_or("")
    }

    /// The arguments after the module name, `argv[1..]`.
    pub fn params(&self) -> &[String] {
        self.args.get(1..).unwrap_or(&[])
    }

    /// `params()[index]`, i.e. `argv[index + 1]`, if present.
    pub fn param(&self, index: usize) -> Option<&str> {
        self.params().get(index).map(String::as_str)
    }

    /// `params()[index]`, or an error naming the argument: `missing argument 2 (<what>)`,
    /// where 2 is its argv position.
    pub fn require_param(&self, index: usize, what: &str) -> Result<&str, HookError> {
        self.param(index).ok_or_else(|| {
            HookError::new(format!(
                "missing argument {} ({what}); command was {:?}",
                index + 1,
                self.args
            ))
            .with_exit_code(2)
        })
    }

    /// The value of an environment variable. If the name occurs more than once, the last one
    /// wins (as for duplicate entries in a container's `env`).
    pub fn env(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The whole environment, in the order the host passed it.
    pub fn env_vars(&self) -> &[(String, String)] {
        &self.env
    }

    /// Checks that `path` is a directory the hook can see, i.e. a volume mount of the container
    /// (or a directory inside one), and returns it.
    ///
    /// Hooks only see the container's `volumeMounts`, preopened at their `mountPath`, so the
    /// caller names the mount path it expects (usually from its arguments). The path must be
    /// absolute. This does not tell whether the mount is read-only: writing is the test.
    pub fn volume(&self, path: impl AsRef<Path>) -> Result<PathBuf, HookError> {
        let path = path.as_ref();
        if !path.is_absolute() {
            return Err(HookError::new(format!(
                "volume path {} must be absolute (a volumeMounts[].mountPath)",
                path.display()
            )));
        }
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => Ok(path.to_path_buf()),
            Ok(_) => Err(HookError::new(format!(
                "{} is not a directory",
                path.display()
            ))),
            Err(e) => Err(HookError::new(format!(
                "{} is not available to this hook ({e}); only the container's volumeMounts are \
                 visible, each at its mountPath",
                path.display()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn env(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn base_env() -> Vec<(String, String)> {
        env(&[
            ("PATH", "/bin"),
            ("WASMHOOK_POD", "web-0"),
            ("WASMHOOK_CONTAINER", "nginx"),
            ("WASMHOOK_HOOK", "preStop"),
        ])
    }

    #[test]
    fn reads_the_guaranteed_variables() {
        let ctx = Context::from_parts(s(&["drain.wasm", "/v", "30s"]), base_env()).unwrap();
        assert_eq!(ctx.pod(), "web-0");
        assert_eq!(ctx.container(), "nginx");
        assert_eq!(ctx.kind(), HookKind::PreStop);
        assert_eq!(ctx.namespace(), None);
        assert_eq!(ctx.program(), "drain.wasm");
        assert_eq!(ctx.params(), &s(&["/v", "30s"])[..]);
        assert_eq!(ctx.param(1), Some("30s"));
        assert_eq!(ctx.param(2), None);
        assert_eq!(ctx.env("PATH"), Some("/bin"));
        assert_eq!(ctx.env("HOME"), None);
        assert_eq!(ctx.env_vars().len(), 4);
    }

    #[test]
    fn namespace_when_present() {
        let mut e = base_env();
        e.push(("WASMHOOK_NAMESPACE".into(), "prod".into()));
        let ctx = Context::from_parts(vec![], e).unwrap();
        assert_eq!(ctx.namespace(), Some("prod"));
        assert_eq!(ctx.program(), "");
        assert!(ctx.params().is_empty());
    }

    #[test]
    fn last_duplicate_wins() {
        let mut e = base_env();
        e.push(("WASMHOOK_HOOK".into(), "postStart".into()));
        e.push(("PATH".into(), "/usr/bin".into()));
        let ctx = Context::from_parts(vec![], e).unwrap();
        assert_eq!(ctx.kind(), HookKind::PostStart);
        assert_eq!(ctx.env("PATH"), Some("/usr/bin"));
    }

    #[test]
    fn missing_variables_are_errors() {
        for missing in [ENV_POD, ENV_CONTAINER, ENV_HOOK] {
            let e: Vec<_> = base_env()
                .into_iter()
                .filter(|(k, _)| k != missing)
                .collect();
            let err = Context::from_parts(vec![], e).unwrap_err();
            assert!(err.message().starts_with(missing), "{err}");
            assert!(err.message().contains("not set"), "{err}");
        }
    }

    #[test]
    fn hook_kind_parsing_is_exact() {
        assert_eq!(
            "postStart".parse::<HookKind>().unwrap(),
            HookKind::PostStart
        );
        assert_eq!("preStop".parse::<HookKind>().unwrap(), HookKind::PreStop);
        for bad in ["poststart", "PreStop", "", "stop"] {
            assert!(bad.parse::<HookKind>().is_err(), "{bad}");
        }
        assert_eq!(HookKind::PreStop.to_string(), "preStop");
        assert_eq!(HookKind::PostStart.as_str(), "postStart");
        let mut e = base_env();
        e.push(("WASMHOOK_HOOK".into(), "onStart".into()));
        let err = Context::from_parts(vec![], e).unwrap_err();
        assert_eq!(
            err.message(),
            "WASMHOOK_HOOK is \"onStart\", expected \"postStart\" or \"preStop\""
        );
    }

    #[test]
    fn require_param_names_the_argument() {
        let ctx = Context::from_parts(s(&["w.wasm", "/v/f"]), base_env()).unwrap();
        assert_eq!(ctx.require_param(0, "file").unwrap(), "/v/f");
        let err = ctx.require_param(1, "message").unwrap_err();
        assert!(
            err.message().starts_with("missing argument 2 (message)"),
            "{err}"
        );
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn volume_checks_existence_and_kind() {
        let ctx = Context::from_parts(vec![], base_env()).unwrap();
        let dir = std::env::temp_dir();
        assert_eq!(ctx.volume(&dir).unwrap(), dir);
        assert!(ctx
            .volume("relative/dir")
            .unwrap_err()
            .message()
            .contains("must be absolute"));
        let missing = dir.join(format!("hooks-sdk-no-such-dir-{}", std::process::id()));
        assert!(ctx
            .volume(&missing)
            .unwrap_err()
            .message()
            .contains("is not available to this hook"));
        let file = dir.join(format!("hooks-sdk-file-{}", std::process::id()));
        std::fs::write(&file, "x").unwrap();
        let err = ctx.volume(&file).unwrap_err();
        std::fs::remove_file(&file).unwrap();
        assert!(err.message().ends_with("is not a directory"), "{err}");
    }
}
