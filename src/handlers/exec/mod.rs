//! The `exec` handler, shared by hooks and exec probes ([`crate::probe::exec`]).
//!
//! What `command[0]` is decides how it runs ([`locate`]), looked up in this order:
//! 1. inside the container's own filesystem, when the backend gives it one (runc): resolved
//!    as the container's exec would resolve it (absolute, relative to its working
//!    directory, or on its `PATH`) without ever leaving the container root ([`lookup`]). A
//!    wasm binary or `.wat` file there is a module shipped in the image; any other file
//!    there is the container's own command. Its module is compiled once per file
//!    ([`ContainerModules`], shared with the CRI front);
//! 2. the module the plan resolved on the host: absolute, next to the manifest, in
//!    `--hooks-dir` (a `.cwasm` only here, never from a container);
//! 3. otherwise a native command.
//!
//! A module runs in wasmtime ([`crate::wasm`]) with the container's env and volume mounts
//! (`lifecycle-semantics.md` §10). A native command runs in the container through the
//! backend's exec (`runc exec`; on the process backend, a process with the container's env
//! and working directory), as the kubelet runs every exec handler, bounded by the same
//! deadline and cancellation, unless the exec policy is `wasm-only` ([`ExecPolicy`]): then it
//! is refused. Outside a pod (no container) only modules run.
//!
//! Failure messages keep the kubelet's shape (§3.1):
//! `Exec lifecycle hook ([<argv>]) for Container "<c>" in Pod "<pod>" failed - error: <err>, message: "<output>"`
//! with `<err>` one of `command '<argv>' exited with <n>: <stderr>`, `command '<argv>' trapped:
//! <trap>`, or `command '<argv>' stopped: <limit>` for the limits the kubelet does not have.

pub mod lookup;
mod modules;

use std::path::Path;
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags};
use tokio_util::sync::CancellationToken;

use super::{
    ContainerHandle, Handlers, HookContext, HookKind, HookOutcome, HookSettings, HookTarget,
};
use crate::backend::{ErrorKind, ExecOutput};
use crate::events::go_quote;
use crate::hook::{ExecPolicy, HostCommand};
/// Whether a host file is a hook module (for the plan, which resolves `command[0]`).
pub use crate::wasm::is_module_file;
use crate::wasm::{
    call_env, ExecOutcome, ExecStatus, HookModule, HookRuntime, Invocation, Preopen,
};
use lookup::CommandKind;
pub use modules::{ContainerModules, DEFAULT_COMPILE_TIMEOUT};

/// The largest module file read from a container (a module is data to us: bounded).
pub const MAX_MODULE_SIZE: u64 = 256 << 20;

pub async fn run(
    h: &Handlers,
    module: Option<&Path>,
    argv: &[String],
    ctx: &HookContext,
) -> HookOutcome {
    let started = Instant::now();
    let rt = h.wasm();
    let command = match locate(h, module, argv, &ctx.target, &ctx.settings).await {
        Ok(c) => c,
        Err(e) => {
            let err = format!("command '{}' could not run: {e}", argv.join(" "));
            return HookOutcome::failed(started, failure_message(argv, ctx, &err, b""));
        }
    };
    let module = match command {
        Command::Module(m) => m,
        Command::Native(c) => return run_native(&c, argv, ctx, started).await,
    };
    let outcome = rt.run(&module, invocation(rt, argv, ctx)).await;
    let output = outcome.output_with_marker();
    let result = match error_text(argv, &outcome) {
        None => Ok(()),
        Some(err) => Err(failure_message(argv, ctx, &err, &output)),
    };
    HookOutcome {
        result,
        events: Vec::new(),
        output,
        duration: started.elapsed(),
        native: false,
    }
}

/// What an exec handler's command turned out to be.
pub enum Command {
    /// A wasm module: it runs sandboxed.
    Module(HookModule),
    /// A native command, to run in this container.
    Native(ContainerHandle),
}

/// Find what `argv[0]` is, in the order of the module docs, for a call with `settings`
/// (its exec policy; with fuel, a module is prepared for the metered engine). `module` is
/// what the plan resolved on the host. `Err` says why the command cannot run at all: a
/// module that does not load, a native command the policy refuses or that has no container
/// to run in.
pub async fn locate(
    h: &Handlers,
    module: Option<&Path>,
    argv: &[String],
    target: &HookTarget,
    settings: &HookSettings,
) -> Result<Command, String> {
    let rt = h.wasm();
    let policy = settings.exec_policy;
    let cmd0 = argv.first().map(String::as_str).unwrap_or_default();
    if let Some(c) = &target.instance {
        match find_in_container(h, c, cmd0, settings.fuel.is_some()).await {
            InContainer::Absent => {}
            InContainer::Module(m) => return Ok(Command::Module(m)),
            InContainer::Native => return native(c, cmd0, policy),
            InContainer::Invalid(why) => return Err(why),
        }
    }
    if let Some(path) = module {
        return rt
            .load_file(path)
            .map(Command::Module)
            .map_err(|e| e.to_string());
    }
    match &target.instance {
        Some(c) => native(c, cmd0, policy),
        None => Err(format!(
            "{} is not a wasm module, and there is no container to run it in",
            go_quote(cmd0.as_bytes())
        )),
    }
}

/// What `command[0]` is in a container's own filesystem.
enum InContainer {
    /// Not there, or the backend gives the container no filesystem of its own.
    Absent,
    Module(HookModule),
    /// A file that is not wasm: the container's own command.
    Native,
    /// A module that cannot load, or a file that cannot be read.
    Invalid(String),
}

async fn find_in_container(
    h: &Handlers,
    c: &ContainerHandle,
    cmd0: &str,
    fuel: bool,
) -> InContainer {
    let Some(root) = c.backend.command_root(&c.id) else {
        return InContainer::Absent;
    };
    let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC;
    let Ok(root_fd) = rustix::fs::open(&root.root, flags, Mode::empty()) else {
        return InContainer::Absent;
    };
    let Ok(found) = lookup::find_command(&root_fd, cmd0, &root.cwd, root.path.as_deref()) else {
        return InContainer::Absent;
    };
    match lookup::command_kind(&found.file, &found.path) {
        Ok(CommandKind::Wasm | CommandKind::Wat) => {
            let name = format!("{} (in the container)", found.path);
            match h
                .container_modules()
                .load(h.wasm(), found.file, &name, fuel)
                .await
            {
                Ok(m) => InContainer::Module(m),
                Err(why) => InContainer::Invalid(why),
            }
        }
        Ok(CommandKind::Other) => InContainer::Native,
        Err(e) => InContainer::Invalid(format!("{}: {e}", found.path)),
    }
}

fn native(c: &ContainerHandle, cmd0: &str, policy: ExecPolicy) -> Result<Command, String> {
    match policy {
        ExecPolicy::Auto => Ok(Command::Native(c.clone())),
        ExecPolicy::WasmOnly => Err(format!(
            "{} is not a wasm module and the exec policy is wasm-only (wasmhook.dev/exec-policy, --exec-policy): native commands are refused",
            go_quote(cmd0.as_bytes())
        )),
    }
}

/// Run a native command in container `c` through its backend, bounded by `timeout` and
/// `cancel`. `None`: cancelled (the exec is dropped, which kills it).
pub async fn exec_native(
    c: &ContainerHandle,
    argv: &[String],
    timeout: Duration,
    cancel: &CancellationToken,
) -> Option<crate::backend::Result<ExecOutput>> {
    tokio::select! {
        r = c.backend.exec(&c.id, argv, timeout) => Some(r),
        _ = cancel.cancelled() => None,
    }
}

/// A native exec hook: the kubelet's `RunInContainer`, whose output is stdout then stderr.
async fn run_native(
    c: &ContainerHandle,
    argv: &[String],
    ctx: &HookContext,
    started: Instant,
) -> HookOutcome {
    let cmd = argv.join(" ");
    let timeout = ctx.settings.timeout;
    let (err, output) = match exec_native(c, argv, timeout, &ctx.cancel).await {
        None => (
            Some(format!("command '{cmd}' stopped: cancelled")),
            Vec::new(),
        ),
        Some(Ok(out)) => {
            let err = (out.exit_code != 0).then(|| {
                format!(
                    "command '{cmd}' exited with {}: {}",
                    out.exit_code,
                    String::from_utf8_lossy(&out.stderr)
                )
            });
            let mut output = out.stdout;
            output.extend_from_slice(&out.stderr);
            (err, output)
        }
        Some(Err(e)) if e.kind() == ErrorKind::DeadlineExceeded => (
            Some(format!(
                "command '{cmd}' stopped: timed out after {}",
                humantime::format_duration(timeout)
            )),
            Vec::new(),
        ),
        Some(Err(e)) => (
            Some(format!("command '{cmd}' could not run: {e}")),
            Vec::new(),
        ),
    };
    HookOutcome {
        result: match err {
            None => Ok(()),
            Some(err) => Err(failure_message(argv, ctx, &err, &output)),
        },
        events: Vec::new(),
        output,
        duration: started.elapsed(),
        native: true,
    }
}

/// What a host file an exec handler names is, for manifest validation: a module (loaded
/// here, so a broken one is reported before anything runs) or a native command.
pub fn check_host_command(rt: &HookRuntime, path: &Path) -> Result<HostCommand, String> {
    if !is_module_file(path) {
        return Ok(HostCommand::Native);
    }
    rt.load_file(path)
        .map(|_| HostCommand::Module)
        .map_err(|e| e.to_string())
}

/// The call for one exec hook: [`invocation_for`] with the hook's target, settings, kind
/// and cancellation.
pub fn invocation(rt: &HookRuntime, argv: &[String], ctx: &HookContext) -> Invocation {
    invocation_for(
        rt,
        argv,
        &ctx.target,
        &ctx.settings,
        Some(ctx.target.kind),
        &ctx.cancel,
    )
}

/// The call for one exec handler, hook or probe: argv as written, the container's env, its
/// mounts preopened at their mount paths, and `settings` over the runtime's default limits.
/// `kind` is a hook's (its identity: `WASMHOOK_HOOK`, the typed context); `None` is a probe,
/// which gets `WASMHOOK_POD`/`_NAMESPACE`/`_CONTAINER` only ([`call_env`], as through the CRI
/// front). The call is cancelled with `cancel`.
pub fn invocation_for(
    rt: &HookRuntime,
    argv: &[String],
    target: &HookTarget,
    settings: &HookSettings,
    kind: Option<HookKind>,
    cancel: &CancellationToken,
) -> Invocation {
    let t = target;
    let (env, identity) = call_env(&t.env, &t.pod, &t.container, kind);
    Invocation {
        args: argv.to_vec(),
        env,
        preopens: t
            .mounts
            .iter()
            .map(|m| Preopen {
                host: m.host_path.clone(),
                guest: m.guest_path.clone(),
                read_only: m.read_only,
                volume: Some(m.volume.clone()),
            })
            .collect(),
        limits: rt
            .config()
            .default_limits
            .clone()
            .with_hook_settings(settings),
        identity,
        cancel: Some(cancel.child_token()),
        // With the network allowed, sockets live in the pod's network namespace (runc
        // backend): the pod's loopback, as for httpGet and tcpSocket handlers.
        netns: t.netns.clone(),
    }
}

/// The kubelet-style `<err>` of a failed call, `None` on success. Exhaustive, without a
/// wildcard arm: a new [`ExecStatus`] must choose its wording here.
fn error_text(argv: &[String], outcome: &ExecOutcome) -> Option<String> {
    let cmd = argv.join(" ");
    let status = &outcome.status;
    Some(match status {
        ExecStatus::Success => return None,
        ExecStatus::Exited(n) => format!(
            "command '{cmd}' exited with {n}: {}",
            String::from_utf8_lossy(&outcome.output.stderr)
        ),
        ExecStatus::Trap(trap) => format!("command '{cmd}' trapped: {trap}"),
        ExecStatus::Failed(msg) => format!("command '{cmd}' failed: {msg}"),
        ExecStatus::Error(msg) => format!("command '{cmd}' could not run: {msg}"),
        // The limits the kubelet does not have: "stopped: <limit>".
        ExecStatus::TimedOut(_)
        | ExecStatus::FuelExhausted(_)
        | ExecStatus::MemoryLimit(_)
        | ExecStatus::MemoryTooSmall { .. }
        | ExecStatus::TableLimit(_)
        | ExecStatus::Cancelled => format!("command '{cmd}' stopped: {status}"),
    })
}

fn failure_message(argv: &[String], ctx: &HookContext, err: &str, output: &[u8]) -> String {
    format!(
        "Exec lifecycle hook ([{}]) for Container \"{}\" in Pod \"{}\" failed - error: {err}, message: {}",
        argv.join(" "),
        ctx.target.container,
        ctx.target.pod,
        go_quote(output)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::PodRef;
    use crate::handlers::{HookMount, HookTarget};
    use crate::hook::{HookKind, HookSettings};
    use crate::wasm::{Allocator, RuntimeConfig};

    #[test]
    fn an_invocation_carries_the_container_view_and_the_hook_limits() {
        let rt = HookRuntime::new(RuntimeConfig {
            allocator: Allocator::OnDemand,
            cache_dir: None,
            ..RuntimeConfig::default()
        })
        .unwrap();
        let ctx = HookContext {
            target: HookTarget {
                pod: PodRef {
                    name: "web".into(),
                    namespace: "ns".into(),
                    uid: "u".into(),
                },
                container: "app".into(),
                kind: HookKind::PreStop,
                pod_ip: [127, 0, 0, 1].into(),
                ports: vec![],
                env: vec![("A".into(), "1".into())],
                mounts: vec![HookMount {
                    volume: "data".into(),
                    host_path: "/tmp/x".into(),
                    guest_path: "/data".into(),
                    read_only: true,
                }],
                netns: None,
                instance: None,
            },
            settings: HookSettings {
                fuel: Some(5),
                max_memory: 1 << 20,
                ..HookSettings::default()
            },
            cancel: Default::default(),
        };
        let argv = vec!["hook.wasm".to_string(), "x".to_string()];
        let inv = invocation(&rt, &argv, &ctx);
        assert_eq!(inv.args, argv);
        assert_eq!(inv.env, [("A".to_string(), "1".to_string())]);
        assert_eq!(
            inv.preopens,
            [Preopen {
                host: "/tmp/x".into(),
                guest: "/data".into(),
                read_only: true,
                volume: Some("data".into()),
            }]
        );
        assert_eq!((inv.limits.fuel, inv.limits.max_memory), (Some(5), 1 << 20));
        assert_eq!(inv.identity.unwrap().kind, HookKind::PreStop);
    }
}
