//! From a validated Pod manifest to the plain data the engine runs: containers in start
//! order with their roles, expanded argv and env, mounts, hooks and hook settings.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Container, Lifecycle};

use super::expand::{expand, lookup, resolve_env};
use super::status::ContainerRole;
use super::EngineConfig;
use crate::backend::{ContainerSpec, Mount, Sandbox, VolumeSource, VolumeSpec};
use crate::events::PodRef;
use crate::handlers::{Hook, HookMount, HookTarget};
use crate::hook::{HookKind, HookSettings};
use crate::manifest::{annotations, resolve_module, ManifestPod};

/// `spec.restartPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

/// A volume mount, still by volume name (host paths are known once the sandbox exists).
#[derive(Clone, Debug)]
pub struct MountPlan {
    pub volume: String,
    pub mount_path: String,
    pub sub_path: Option<String>,
    pub read_only: bool,
}

/// One lifecycle hook, ready to run.
#[derive(Clone, Debug)]
pub struct HookPlan {
    pub hook: Hook,
    pub settings: HookSettings,
}

impl HookPlan {
    /// `exec`, `httpGet`, `tcpSocket` or `sleep`.
    pub fn handler_name(&self) -> &'static str {
        match self.hook {
            Hook::Exec { .. } => "exec",
            Hook::HttpGet(_) => "httpGet",
            Hook::TcpSocket(_) => "tcpSocket",
            Hook::Sleep(_) => "sleep",
        }
    }
}

#[derive(Clone, Debug)]
pub struct ContainerPlan {
    pub name: String,
    pub role: ContainerRole,
    pub image: Option<String>,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<PathBuf>,
    pub mounts: Vec<MountPlan>,
    pub ports: Vec<(String, u16)>,
    pub post_start: Option<HookPlan>,
    pub pre_stop: Option<HookPlan>,
    /// `lifecycle.stopSignal`, else SIGTERM.
    pub stop_signal: i32,
    pub memory_limit: Option<u64>,
    pub cpu_limit_millis: Option<u64>,
}

/// A pod, ready to run.
#[derive(Clone, Debug)]
pub struct PodPlan {
    pub pod: PodRef,
    pub restart_policy: RestartPolicy,
    pub termination_grace: Option<i64>,
    pub deletion_grace: Option<i64>,
    pub volumes: Vec<VolumeSpec>,
    /// Init containers (plain and sidecars) in spec order, then app containers.
    pub containers: Vec<ContainerPlan>,
}

/// Plan a validated pod. Module paths of exec hooks are resolved here (validation has
/// checked they resolve; a file removed since then fails at run time, as a hook failure).
pub fn plan(mp: &ManifestPod, config: &EngineConfig) -> PodPlan {
    let pod = &mp.pod;
    let spec = pod.spec.clone().unwrap_or_default();
    let meta = &pod.metadata;
    let pod_ref = PodRef {
        name: meta.name.clone().unwrap_or_default(),
        namespace: meta.namespace.clone().unwrap_or_else(|| "default".into()),
        uid: meta.uid.clone().unwrap_or_default(),
    };
    let restart_policy = match spec.restart_policy.as_deref() {
        Some("Never") => RestartPolicy::Never,
        Some("OnFailure") => RestartPolicy::OnFailure,
        _ => RestartPolicy::Always,
    };
    let volumes = spec
        .volumes
        .iter()
        .flatten()
        .map(|v| VolumeSpec {
            name: v.name.clone(),
            source: match &v.host_path {
                Some(hp) => VolumeSource::HostPath(PathBuf::from(&hp.path)),
                None => VolumeSource::EmptyDir,
            },
        })
        .collect();
    let hooks_dir = config.hooks_dir.as_deref();
    let plan_container = |c: &Container, role: ContainerRole| -> ContainerPlan {
        let env = resolve_env(
            &c.env
                .iter()
                .flatten()
                .map(|e| (e.name.clone(), e.value.clone()))
                .collect::<Vec<_>>(),
        );
        let argv = c
            .command
            .iter()
            .flatten()
            .chain(c.args.iter().flatten())
            .map(|a| expand(a, |n| lookup(&env, n)))
            .collect();
        let hook = |kind: HookKind, l: Option<&Lifecycle>| -> Option<HookPlan> {
            let handler = match kind {
                HookKind::PostStart => l?.post_start.as_ref()?,
                HookKind::PreStop => l?.pre_stop.as_ref()?,
            };
            let hook = Hook::from_k8s(handler, |m| {
                resolve_module(m, mp.manifest_dir(), hooks_dir).unwrap_or_else(|_| m.into())
            })
            .ok()?;
            Some(HookPlan {
                hook,
                settings: annotations::hook_settings(pod, &c.name, kind, &config.hook_defaults),
            })
        };
        let lifecycle = c.lifecycle.as_ref();
        let limits = c.resources.as_ref().and_then(|r| r.limits.as_ref());
        ContainerPlan {
            name: c.name.clone(),
            role,
            image: c.image.clone(),
            argv,
            env,
            working_dir: c.working_dir.as_ref().map(PathBuf::from),
            mounts: c
                .volume_mounts
                .iter()
                .flatten()
                .map(|m| MountPlan {
                    volume: m.name.clone(),
                    mount_path: m.mount_path.clone(),
                    sub_path: m.sub_path.clone().filter(|s| !s.is_empty()),
                    read_only: m.read_only.unwrap_or(false),
                })
                .collect(),
            ports: c
                .ports
                .iter()
                .flatten()
                .filter_map(|p| Some((p.name.clone()?, u16::try_from(p.container_port).ok()?)))
                .collect(),
            post_start: hook(HookKind::PostStart, lifecycle),
            pre_stop: hook(HookKind::PreStop, lifecycle),
            stop_signal: lifecycle
                .and_then(|l| l.stop_signal.as_deref())
                .and_then(signal_number)
                .unwrap_or(SIGTERM),
            memory_limit: limits
                .and_then(|l| l.get("memory"))
                .and_then(|q| crate::manifest::parse_quantity_bytes(&q.0).ok()),
            cpu_limit_millis: limits
                .and_then(|l| l.get("cpu"))
                .and_then(|q| parse_cpu_millis(&q.0)),
        }
    };
    let mut containers = Vec::new();
    for c in spec.init_containers.iter().flatten() {
        let role = if c.restart_policy.as_deref() == Some("Always") {
            ContainerRole::Sidecar
        } else {
            ContainerRole::Init
        };
        containers.push(plan_container(c, role));
    }
    for c in &spec.containers {
        containers.push(plan_container(c, ContainerRole::App));
    }
    PodPlan {
        pod: pod_ref,
        restart_policy,
        termination_grace: spec.termination_grace_period_seconds,
        deletion_grace: meta.deletion_grace_period_seconds,
        volumes,
        containers,
    }
}

impl ContainerPlan {
    /// The volume mounts with their host directories in `sandbox`.
    fn host_mounts(&self, sandbox: &Sandbox) -> Vec<(PathBuf, &MountPlan)> {
        self.mounts
            .iter()
            .filter_map(|m| {
                let base = sandbox.volumes.get(&m.volume)?;
                let host = match &m.sub_path {
                    Some(sub) => base.join(sub),
                    None => base.clone(),
                };
                Some((host, m))
            })
            .collect()
    }

    /// What the backend gets to create this container.
    pub fn container_spec(&self, sandbox: &Sandbox) -> ContainerSpec {
        ContainerSpec {
            name: self.name.clone(),
            image: self.image.clone(),
            argv: self.argv.clone(),
            env: self.env.clone(),
            working_dir: self.working_dir.clone(),
            mounts: self
                .host_mounts(sandbox)
                .into_iter()
                .map(|(host_path, m)| Mount {
                    host_path,
                    container_path: PathBuf::from(&m.mount_path),
                    read_only: m.read_only,
                })
                .collect(),
            memory_limit: self.memory_limit,
            cpu_limit_millis: self.cpu_limit_millis,
        }
    }

    /// What this container's hooks run against.
    pub fn hook_target(&self, pod: &PodRef, sandbox: &Sandbox, kind: HookKind) -> HookTarget {
        HookTarget {
            pod: pod.clone(),
            container: self.name.clone(),
            kind,
            pod_ip: sandbox.address,
            netns: sandbox.netns.clone(),
            ports: self.ports.clone(),
            env: self.env.clone(),
            mounts: self
                .host_mounts(sandbox)
                .into_iter()
                .map(|(host_path, m)| HookMount {
                    volume: m.volume.clone(),
                    host_path,
                    guest_path: m.mount_path.clone(),
                    read_only: m.read_only,
                })
                .collect(),
        }
    }

    pub fn hook(&self, kind: HookKind) -> Option<&HookPlan> {
        match kind {
            HookKind::PostStart => self.post_start.as_ref(),
            HookKind::PreStop => self.pre_stop.as_ref(),
        }
    }
}

pub const SIGTERM: i32 = 15;
pub const SIGKILL: i32 = 9;

/// Linux signal numbers by the names `lifecycle.stopSignal` accepts.
pub fn signal_number(name: &str) -> Option<i32> {
    const NAMES: [&str; 31] = [
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    NAMES.iter().position(|n| *n == name).map(|i| i as i32 + 1)
}

/// `500m` → 500, `2` → 2000, `0.5` → 500.
fn parse_cpu_millis(q: &str) -> Option<u64> {
    if let Some(m) = q.strip_suffix('m') {
        return m.parse().ok();
    }
    let cores: f64 = q.parse().ok()?;
    (cores >= 0.0).then(|| (cores * 1000.0).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names() {
        assert_eq!(signal_number("SIGTERM"), Some(15));
        assert_eq!(signal_number("SIGQUIT"), Some(3));
        assert_eq!(signal_number("SIGKILL"), Some(9));
        assert_eq!(signal_number("SIGSYS"), Some(31));
        assert_eq!(signal_number("TERM"), None);
    }

    #[test]
    fn cpu_quantities() {
        assert_eq!(parse_cpu_millis("500m"), Some(500));
        assert_eq!(parse_cpu_millis("2"), Some(2000));
        assert_eq!(parse_cpu_millis("0.25"), Some(250));
        assert_eq!(parse_cpu_millis("x"), None);
    }
}
