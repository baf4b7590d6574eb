//! What a guest sees of a call: its WASI context (argv, environment, preopens, captured
//! output, guarded sockets), the typed hook context, and the store data that holds them.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::sockets::WasiSocketsCtxView;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::invoke::{HookIdentity, Invocation};
use super::limits::StoreLimiter;
use super::network::{GuardedSockets, HttpPolicy, NetworkGuard};
use super::output::OutputBuffer;
use super::typed;
use crate::events::PodRef;
use crate::hook::HookKind;

/// Store data of preview 1 modules.
pub(crate) struct P1State {
    pub(crate) wasi: WasiP1Ctx,
    limiter: StoreLimiter,
}

/// Store data of components.
pub(crate) struct P2State {
    ctx: WasiCtx,
    table: ResourceTable,
    limiter: StoreLimiter,
    http: WasiHttpCtx,
    http_policy: HttpPolicy,
}

impl WasiView for P2State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for P2State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_policy,
        }
    }
}

impl GuardedSockets for P2State {
    fn guarded_sockets(&mut self) -> (WasiSocketsCtxView<'_>, &NetworkGuard) {
        let sockets = WasiSocketsCtxView {
            ctx: self.ctx.sockets(),
            table: &mut self.table,
        };
        (sockets, &self.http_policy.guard)
    }
}

/// The WASI context: argv, env (with `WASMHOOK_*` winning clashes), preopens, captured
/// output, empty stdin, and sockets only as far as the network policy (`guard`) permits.
/// Nothing else of the host. Without a guard (preview 1, which has no sockets) WASI's default
/// refuses every socket address.
pub(super) fn wasi_builder(
    inv: &Invocation,
    output: &OutputBuffer,
    guard: Option<&Arc<NetworkGuard>>,
) -> Result<WasiCtxBuilder, String> {
    let mut b = WasiCtxBuilder::new();
    b.args(&inv.args)
        .stdout(output.stdout())
        .stderr(output.stderr());
    for (k, v) in hook_env(inv) {
        b.env(k, v);
    }
    for p in &inv.preopens {
        let perms = if p.read_only {
            FsPerms::ReadOnly
        } else {
            FsPerms::ReadWrite
        };
        b.preopened_dir(&p.host, &p.guest, perms).map_err(|e| {
            format!(
                "cannot open {} for the hook at {}: {e}",
                p.host.display(),
                p.guest
            )
        })?;
    }
    // Every socket use and name lookup goes to the guard, under `deny` too: it refuses
    // them all, and the refusals are reported.
    if let Some(guard) = guard {
        let guard = guard.clone();
        b.socket_addr_check(move |addr, use_| {
            let guard = guard.clone();
            Box::pin(async move { guard.check(addr, use_).await })
        })
        .allow_tcp(true)
        .allow_udp(true)
        // Which names: the guarded `resolve-addresses` (`network::add_to_linker`) decides.
        .allow_ip_name_lookup(true);
    }
    Ok(b)
}

/// The hook's environment: the container's, then `WASMHOOK_*`, which win clashes. Borrowed
/// from the invocation: the WASI context copies what it keeps.
fn hook_env(inv: &Invocation) -> impl Iterator<Item = (&str, &str)> {
    let ours = identity_env(inv.identity.as_ref());
    let theirs = inv
        .env
        .iter()
        .filter(move |(k, _)| !ours.iter().flatten().any(|(o, _)| o == k))
        .map(|(k, v)| (k.as_str(), v.as_str()));
    theirs.chain(ours.into_iter().flatten())
}

/// The environment and identity of a call for container `container` of `pod`: a hook's
/// (`Some(kind)`: `env` as it is, the identity adds the `WASMHOOK_*` names at run time) or a
/// probe's (`None`: no identity, see [`probe_env`]). The engine and the CRI front both build
/// their calls with it.
pub fn call_env(
    env: &[(String, String)],
    pod: &PodRef,
    container: &str,
    kind: Option<HookKind>,
) -> (Vec<(String, String)>, Option<HookIdentity>) {
    match kind {
        Some(kind) => (
            env.to_vec(),
            Some(HookIdentity {
                pod: pod.clone(),
                container: container.to_owned(),
                kind,
            }),
        ),
        None => (probe_env(env, pod, container), None),
    }
}

/// The environment of a call without a hook identity, a probe: `env` without any
/// `WASMHOOK_*`, then `WASMHOOK_POD`, `WASMHOOK_NAMESPACE` and `WASMHOOK_CONTAINER`, the names
/// a hook gets, but no `WASMHOOK_HOOK` (a probe is no hook).
fn probe_env(env: &[(String, String)], pod: &PodRef, container: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = env
        .iter()
        .filter(|(k, _)| !k.starts_with("WASMHOOK_"))
        .cloned()
        .collect();
    env.push(("WASMHOOK_POD".into(), pod.name.clone()));
    env.push(("WASMHOOK_NAMESPACE".into(), pod.namespace.clone()));
    env.push(("WASMHOOK_CONTAINER".into(), container.to_owned()));
    env
}

fn identity_env(id: Option<&HookIdentity>) -> Option<[(&'static str, &str); 4]> {
    let id = id?;
    Some([
        ("WASMHOOK_POD", &id.pod.name),
        ("WASMHOOK_NAMESPACE", &id.pod.namespace),
        ("WASMHOOK_CONTAINER", &id.container),
        ("WASMHOOK_HOOK", id.kind.as_str()),
    ])
}

pub(super) fn typed_context(inv: &Invocation) -> typed::Context {
    let (pod, namespace, uid, container, kind) = match &inv.identity {
        Some(id) => (
            id.pod.name.clone(),
            id.pod.namespace.clone(),
            id.pod.uid.clone(),
            id.container.clone(),
            id.kind,
        ),
        None => Default::default(),
    };
    let env = hook_env(inv)
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    typed::Context {
        pod,
        namespace,
        uid,
        container,
        kind: match kind {
            HookKind::PostStart => typed::WitHookKind::PostStart,
            HookKind::PreStop => typed::WitHookKind::PreStop,
        },
        args: inv.args.clone(),
        env,
        volumes: inv
            .preopens
            .iter()
            .map(|p| typed::Volume {
                name: p.volume.clone().unwrap_or_default(),
                path: p.guest.clone(),
                read_only: p.read_only,
            })
            .collect(),
    }
}

/// Store data with a resource limiter.
pub(super) trait Limited {
    fn limiter(&mut self) -> &mut StoreLimiter;
}

impl Limited for P1State {
    fn limiter(&mut self) -> &mut StoreLimiter {
        &mut self.limiter
    }
}

impl Limited for P2State {
    fn limiter(&mut self) -> &mut StoreLimiter {
        &mut self.limiter
    }
}

/// Store data of a preview 1 call.
pub(super) fn p1_state(mut wasi: WasiCtxBuilder, limiter: StoreLimiter) -> P1State {
    P1State {
        wasi: wasi.build_p1(),
        limiter,
    }
}

/// Store data of a component call.
pub(super) fn p2_state(
    mut wasi: WasiCtxBuilder,
    http_policy: HttpPolicy,
    limiter: StoreLimiter,
) -> P2State {
    P2State {
        ctx: wasi.build(),
        table: ResourceTable::new(),
        limiter,
        http: WasiHttpCtx::new(),
        http_policy,
    }
}
