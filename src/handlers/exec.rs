//! The `exec` handler: `command[0]` names a WebAssembly module run by [`crate::wasm`] with the
//! container's env and volume mounts (`lifecycle-semantics.md` §10).
//!
//! Failure messages keep the kubelet's shape (§3.1):
//! `Exec lifecycle hook ([<argv>]) for Container "<c>" in Pod "<pod>" failed - error: <err>, message: "<output>"`
//! with `<err>` one of `command '<argv>' exited with <n>: <stderr>`, `command '<argv>' trapped:
//! <trap>`, or `command '<argv>' stopped: <limit>` for the limits the kubelet does not have.

use std::path::Path;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::{HookContext, HookKind, HookOutcome, HookSettings, HookTarget};
use crate::events::go_quote;
use crate::wasm::{call_env, ExecOutcome, ExecStatus, HookRuntime, Invocation, Preopen};

pub async fn run(
    rt: &HookRuntime,
    module: &Path,
    argv: &[String],
    ctx: &HookContext,
) -> HookOutcome {
    let started = Instant::now();
    let module = match rt.load_file(module) {
        Ok(m) => m,
        Err(e) => {
            let err = format!("command '{}' could not run: {e}", argv.join(" "));
            return HookOutcome::failed(started, failure_message(argv, ctx, &err, b""));
        }
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
    }
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
