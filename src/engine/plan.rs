//! From a validated Pod manifest to the plain data the engine runs: containers in start
//! order with their roles, expanded argv and env, mounts, hooks and hook settings.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Lifecycle, Probe};

use super::expand::{expand, lookup, resolve_env};
use super::status::ContainerRole;
use super::EngineConfig;
use crate::backend::{ContainerSpec, Mount, PullPolicy, Sandbox, VolumeSource, VolumeSpec};
use crate::events::PodRef;
use crate::handlers::exec::is_module_file;
use crate::handlers::{ContainerHandle, Hook, HookMount, HookTarget};
use crate::hook::{HookKind, HookSettings};
use crate::manifest::{annotations, default_pull_policy, resolve_module, ManifestPod};
use crate::probe::{ProbeHandler, ProbeKind};

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
    /// The hook's limits. For preStop, `timeout` is an explicit `wasmhook.dev/hook-timeout`
    /// annotation or [`UNBOUNDED_PRE_STOP`]: the kubelet's deadline for preStop is the grace
    /// period, and the engine-wide default (`--timeout`) must not shorten it.
    pub settings: HookSettings,
}

/// The `timeout` of a preStop hook no annotation bounds: none of its own. The engine still
/// ends it with its container (`engine::pod::stop`), at most the grace period plus the
/// 2 s of the stop signal after it started.
pub const UNBOUNDED_PRE_STOP: Duration = Duration::from_secs(u32::MAX as u64);

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

/// One probe of a container, ready to run; the API's defaults applied (period 10 s,
/// timeout 1 s, thresholds 1 and 3).
#[derive(Clone, Debug)]
pub struct ProbePlan {
    pub kind: ProbeKind,
    pub handler: ProbeHandler,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
    /// The probe-level `terminationGracePeriodSeconds` (liveness and startup): the grace of
    /// the kill a failure causes, unless the pod's deletion grace is set.
    pub termination_grace: Option<i64>,
    /// The wasm limits of an exec probe: pod-wide and per-container annotations over the
    /// engine defaults (its timeout is `timeout` above).
    pub settings: HookSettings,
}

#[derive(Clone, Debug)]
pub struct ContainerPlan {
    pub name: String,
    pub role: ContainerRole,
    pub image: Option<String>,
    /// `imagePullPolicy`; unset, the API server's default for `image`.
    pub pull_policy: PullPolicy,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<PathBuf>,
    pub mounts: Vec<MountPlan>,
    pub ports: Vec<(String, u16)>,
    pub post_start: Option<HookPlan>,
    pub pre_stop: Option<HookPlan>,
    /// Startup, liveness and readiness probes, in that order, those that are set.
    pub probes: Vec<ProbePlan>,
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
    // `command[0]` as a module file on the host, if it names one (else it is looked up in
    // the container, or runs natively: `handlers::exec`).
    let host_module = |m: &str| {
        resolve_module(m, mp.manifest_dir(), hooks_dir)
            .ok()
            .filter(|p| is_module_file(p))
    };
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
            let hook = Hook::from_k8s(handler, host_module).ok()?;
            let mut settings =
                annotations::hook_settings(pod, &c.name, kind, &config.hook_defaults);
            if kind == HookKind::PreStop {
                settings.timeout = annotations::explicit_hook_timeout(pod, &c.name, kind)
                    .unwrap_or(UNBOUNDED_PRE_STOP);
            }
            Some(HookPlan { hook, settings })
        };
        let probe = |kind: ProbeKind, p: Option<&Probe>| -> Option<ProbePlan> {
            let p = p?;
            let handler = ProbeHandler::from_k8s(p, host_module)?;
            let seconds = |n: Option<i32>, default: i32| {
                Duration::from_secs(u64::try_from(n.unwrap_or(default)).unwrap_or(0))
            };
            let count = |n: Option<i32>, default: u32| {
                n.and_then(|n| u32::try_from(n).ok())
                    .unwrap_or(default)
                    .max(1)
            };
            Some(ProbePlan {
                kind,
                handler,
                initial_delay: seconds(p.initial_delay_seconds, 0),
                period: seconds(p.period_seconds, 10).max(Duration::from_secs(1)),
                timeout: seconds(p.timeout_seconds, 1).max(Duration::from_secs(1)),
                success_threshold: count(p.success_threshold, 1),
                failure_threshold: count(p.failure_threshold, 3),
                termination_grace: p.termination_grace_period_seconds,
                settings: annotations::probe_settings(pod, &c.name, &config.hook_defaults),
            })
        };
        let probes = [
            (ProbeKind::Startup, c.startup_probe.as_ref()),
            (ProbeKind::Liveness, c.liveness_probe.as_ref()),
            (ProbeKind::Readiness, c.readiness_probe.as_ref()),
        ]
        .into_iter()
        .filter_map(|(kind, p)| probe(kind, p))
        .collect();
        let lifecycle = c.lifecycle.as_ref();
        let limits = c.resources.as_ref().and_then(|r| r.limits.as_ref());
        ContainerPlan {
            name: c.name.clone(),
            role,
            image: c.image.clone(),
            pull_policy: c
                .image_pull_policy
                .as_deref()
                .and_then(PullPolicy::parse)
                .unwrap_or_else(|| {
                    let default = default_pull_policy(c.image.as_deref().unwrap_or(""));
                    PullPolicy::parse(default).unwrap_or_default()
                }),
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
            probes,
            stop_signal: lifecycle
                .and_then(|l| l.stop_signal.as_deref())
                // Validated (`spec.os.name: linux`); a Windows name has no Linux number.
                .and_then(crate::manifest::signals::linux_stop_signal)
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

    /// What this container's hooks (and probes) run against: its running `instance`.
    pub fn hook_target(
        &self,
        pod: &PodRef,
        sandbox: &Sandbox,
        kind: HookKind,
        instance: ContainerHandle,
    ) -> HookTarget {
        HookTarget {
            instance: Some(instance),
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

    pub fn probe(&self, kind: ProbeKind) -> Option<&ProbePlan> {
        self.probes.iter().find(|p| p.kind == kind)
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
    fn cpu_quantities() {
        assert_eq!(parse_cpu_millis("500m"), Some(500));
        assert_eq!(parse_cpu_millis("2"), Some(2000));
        assert_eq!(parse_cpu_millis("0.25"), Some(250));
        assert_eq!(parse_cpu_millis("x"), None);
    }
}
