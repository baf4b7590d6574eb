//! `ExecSync`: run the command as a wasm call when it is a module inside the container,
//! else hand the call back to the relay to forward.
//!
//! What the call sees (the same contract as `wasmhook run`'s exec hooks, from the
//! container's runtime spec instead of the manifest):
//! - argv: `cmd` as the kubelet sent it;
//! - env: the container process's env (`runtimeSpec.process.env`, plus `HOME` as runc adds
//!   it), then `WASMHOOK_POD`, `WASMHOOK_NAMESPACE`, `WASMHOOK_CONTAINER` (and
//!   `WASMHOOK_HOOK` for lifecycle hooks) from the kubelet's labels;
//! - files: each directory bind mount of the container (its volumes) preopened at its
//!   container path, read-only where the mount is; nothing else of the container's image,
//!   and nothing of the host;
//! - network: what the pod's `wasmhook.dev/hook-network` policy allows (none by default);
//!   sockets live in the container's network namespace, so `pod` means that namespace's
//!   loopback and addresses, and refusals are reported on stderr ([`super::status`]);
//! - limits: `wasmhook.dev/*` annotations of the pod over the proxy's defaults; a probe is
//!   bounded by its own `timeout`.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Response;
use prost::Message;
use rustix::fs::OFlags;

use super::context::ContainerView;
use super::metrics::Outcome;
use super::proto::{ExecSyncRequest, ExecSyncResponse};
use super::{status, Shared};
use crate::grpc::{self, Body};
use crate::handlers::exec::lookup::{self, CommandKind};
use crate::hook::{HookKind, HookSettings};
use crate::wasm::{call_env, ExecStatus, Invocation, Limits, Preopen};

/// The proxy's reply to `body` (an `ExecSyncRequest`), or `None` to forward it.
pub(super) async fn answer(p: &Shared, body: Bytes) -> Option<Response<Body>> {
    let req = ExecSyncRequest::decode(grpc::unframe(body)?).ok()?;
    let cmd0 = req.cmd.first()?;
    let view = match p
        .contexts
        .get(&p.upstream, &p.metrics, &req.container_id)
        .await
    {
        Ok(v) => v,
        Err(e) => {
            tracing::debug!(container = %req.container_id, reason = %e, "exec relayed: no container view");
            p.metrics.exec_outcome(Outcome::RelayedNative);
            return None;
        }
    };
    p.metrics.set_cached_containers(p.contexts.cached());
    let found = lookup::find_command(&view.root, cmd0, &view.cwd, view.env_var("PATH"));
    let found = match found {
        Ok(f) if is_module(&f) => f,
        _ => {
            tracing::debug!(container = %req.container_id, cmd = ?req.cmd, "exec relayed: not a wasm module");
            p.metrics.exec_outcome(Outcome::RelayedNative);
            return None;
        }
    };
    let started = Instant::now();
    let _running = p.metrics.wasm_started();
    let probe_timeout = (req.timeout > 0).then(|| Duration::from_secs(req.timeout as u64));
    let kind = hook_kind(&view, &req);
    let settings = settings(p, &view, kind);
    let module = match p
        .modules
        .load(&p.runtime, found.file, &found.path, settings.fuel.is_some())
        .await
    {
        Ok(m) => m,
        Err(msg) => {
            tracing::info!(container = %view.id, cmd = ?req.cmd, error = %msg, "wasm exec cannot run");
            p.metrics
                .wasm_done(Outcome::Error, started.elapsed().as_secs_f64());
            return Some(status::cannot_run(&msg).into_response());
        }
    };
    let (inv, _held) = invocation(p, &view, &req, kind, &settings, probe_timeout);
    let outcome = p.runtime.run(&module, inv).await;
    let result = Outcome::of(&outcome.status);
    p.metrics.wasm_done(result, started.elapsed().as_secs_f64());
    log(&view, &req, &outcome.status, started.elapsed());
    Some(match status::reply(outcome, probe_timeout) {
        Ok(resp) => grpc::ok_response(&fit(resp)),
        Err(s) => s.into_response(),
    })
}

fn is_module(f: &lookup::Found) -> bool {
    matches!(
        lookup::command_kind(&f.file, &f.path),
        Ok(CommandKind::Wasm | CommandKind::Wat)
    )
}

/// `None` for a probe (a timeout is set); a lifecycle hook is a preStop when its command
/// is the container's preStop handler, else a postStart.
fn hook_kind(view: &ContainerView, req: &ExecSyncRequest) -> Option<HookKind> {
    if req.timeout > 0 {
        None
    } else if view.pre_stop.as_deref() == Some(&req.cmd[..]) {
        Some(HookKind::PreStop)
    } else {
        Some(HookKind::PostStart)
    }
}

fn settings(p: &Shared, view: &ContainerView, kind: Option<HookKind>) -> HookSettings {
    crate::manifest::annotations::hook_settings_from(
        &view.annotations,
        &view.name,
        kind,
        &p.config.defaults,
    )
}

/// The call, and the directory fds its preopens name (`/proc/self/fd/N`), which must stay
/// open until the call has started.
fn invocation(
    p: &Shared,
    view: &Arc<ContainerView>,
    req: &ExecSyncRequest,
    kind: Option<HookKind>,
    s: &HookSettings,
    probe_timeout: Option<Duration>,
) -> (Invocation, Vec<OwnedFd>) {
    let mut held = Vec::new();
    let mut preopens = Vec::new();
    for m in &view.mounts {
        match lookup::open_in_root(&view.root, &m.destination, OFlags::PATH | OFlags::DIRECTORY) {
            Ok(fd) => {
                preopens.push(Preopen {
                    host: ContainerView::fd_path(&fd),
                    guest: m.destination.clone(),
                    read_only: m.read_only,
                    volume: m.volume.clone(),
                });
                held.push(fd);
            }
            Err(e) => {
                tracing::debug!(container = %view.id, mount = %m.destination, error = %e, "mount not visible")
            }
        }
    }
    let (env, identity) = call_env(&view.env, &view.pod, &view.name, kind);
    let inv = Invocation {
        args: req.cmd.clone(),
        env,
        preopens,
        limits: Limits {
            timeout: probe_timeout.unwrap_or(s.timeout),
            max_output: p.config.max_output,
            ..p.runtime
                .config()
                .default_limits
                .clone()
                .with_hook_settings(s)
        },
        identity,
        cancel: Some(view.cancel.child_token()),
        netns: view.netns.as_ref().map(ContainerView::fd_path),
    };
    (inv, held)
}

/// Keep the reply under the 16 MiB the kubelet accepts: stdout gives way first, then
/// stderr (each is already capped at `max_output`).
fn fit(mut r: ExecSyncResponse) -> ExecSyncResponse {
    const ROOM: usize = grpc::MAX_MESSAGE - 64;
    if r.stderr.len() > ROOM {
        r.stderr.truncate(ROOM);
    }
    let left = ROOM - r.stderr.len();
    if r.stdout.len() > left {
        r.stdout.truncate(left);
    }
    r
}

fn log(view: &ContainerView, req: &ExecSyncRequest, status: &ExecStatus, took: Duration) {
    let took = format!("{took:.2?}");
    if matches!(status, ExecStatus::Success | ExecStatus::Exited(_)) {
        tracing::debug!(container = %view.id, pid = view.pid, pod = %view.pod, cmd = ?req.cmd, %status, %took, "wasm exec");
    } else {
        tracing::info!(container = %view.id, pid = view.pid, pod = %view.pod, cmd = ?req.cmd, %status, %took, "wasm exec failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_fit_the_kubelets_limit() {
        let r = fit(ExecSyncResponse {
            stdout: vec![b'o'; 16 << 20],
            stderr: vec![b'e'; 1 << 20],
            exit_code: 0,
        });
        assert_eq!(r.stderr.len(), 1 << 20);
        assert!(r.encoded_len() < grpc::MAX_MESSAGE);
    }
}
