//! `wasmhook cri` against a real containerd (no mocks): a private containerd per test
//! (tests/common/containerd.rs), pods driven as the kubelet drives them
//! (tests/common/cri/), the proxy in-process in front of it. One test runs every scenario
//! on one containerd and one pod (`proxy_in_front_of_containerd`); the scenarios live by
//! concern in this directory's modules.
//!
//! Needs root, containerd, runc and busybox-static; skipped with a message otherwise, or
//! failed when `WASMHOOK_REQUIRE_CONTAINERD=1` (CI).

#[path = "../common/mod.rs"]
mod common;

mod harness;
mod metrics;
mod pod_policy;
mod relayed;
mod restarts;
mod wasm_exec;

use std::collections::BTreeSet;
use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::containerd::{mounts_under, Containerd};
use common::cri::{self, hooks, Cri, Pod, RawReply, RunningProxy};
use futures::FutureExt;
use prost::Message;
use wasmhook::cri::CriProxyConfig;
use wasmhook::grpc::Code;

use metrics::{
    compiling_is_not_charged_to_the_call, metrics_count_calls_and_outcomes,
    warm_wasm_exec_makes_no_runtime_call,
};
use pod_policy::{
    network_policy_from_the_pod_annotation, pod_annotations_bound_hooks,
    stop_container_cancels_a_running_hook,
};
use relayed::{
    containerd_errors_come_back_verbatim, other_calls_pass_through_byte_for_byte,
    shell_command_relayed_unchanged,
};
use restarts::{containerd_restarts_under_the_proxy, proxy_starts_before_containerd};
use wasm_exec::{
    absolute_symlink_stays_inside_the_container, concurrent_calls,
    exit_code_stdout_and_stderr_apart, invalid_module_answers_unknown,
    looping_probe_answers_deadline_exceeded, noop_latency,
    output_is_capped_to_what_the_kubelet_accepts, trapping_hook_answers_an_exit_code,
    wasm_hook_by_bare_name_on_path, wasm_hook_in_a_volume, wasm_hook_in_the_image,
    wasm_hook_relative_to_working_dir, wat_text_hook,
};

/// The proxy's default hook timeout here: long enough that a hook cut short sooner was cut
/// by something else (an annotation, `StopContainer`).
const HOOK_TIMEOUT: Duration = Duration::from_secs(20);
/// Each scenario's bound.
const SCENARIO_BOUND: Duration = Duration::from_secs(45);

/// Everything the scenarios share: one containerd, the proxy in front of it, one pod whose
/// `app` container runs `sleep 3600` with the hooks image.
struct World {
    direct: Cri,
    proxy: Cri,
    pod: Pod,
    /// The proxy's `/metrics` address.
    metrics: std::net::SocketAddr,
}

/// One containerd, one proxy, one pod; every scenario of the issue in turn. A failing
/// scenario does not stop the others: the test fails at the end with the list.
#[test]
fn proxy_in_front_of_containerd() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("WASMHOOK_TEST_LOG"))
        .with_test_writer()
        .try_init();
    let t0 = Instant::now();
    let Some(mut cd) = Containerd::start_with(hooks::install_image_hooks) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let failures = rt.block_on(async {
        let proxy_socket = cd.dir().join("proxy.sock");
        let config = CriProxyConfig {
            listen: proxy_socket.clone(),
            runtime_endpoint: cd.socket(),
            defaults: wasmhook::handlers::HookSettings {
                timeout: HOOK_TIMEOUT,
                ..Default::default()
            },
            metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
            ..CriProxyConfig::default()
        };
        let running = RunningProxy::start(config).await;
        let metrics = running.metrics.expect("a metrics address");
        let mode = std::fs::metadata(&proxy_socket)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o660, "the proxy's socket mode");

        let direct = Cri::new(cd.socket());
        let proxy = Cri::new(&proxy_socket);
        // The kubelet creates everything through the proxy.
        let pod = cri::run_busybox_pod(&proxy, &cd, "main", &[("example.com/a", "b")])
            .await
            .unwrap_or_else(|e| panic!("pod through the proxy: {e}\n{}", cd.log_tail(30)));
        std::fs::write(pod.data.join("input.txt"), "volume says hi\n").unwrap();
        hooks::install(&pod.data.join("vol-inspect.wasm"), &hooks::inspect());
        let w = World {
            direct,
            proxy,
            pod,
            metrics,
        };
        eprintln!("setup done in {:.2?}", t0.elapsed());

        let mut failures = Vec::new();
        macro_rules! run {
            ($name:ident) => {
                scenario(&mut failures, stringify!($name), $name(&w, &cd)).await
            };
        }
        run!(wasm_hook_in_the_image);
        run!(wasm_hook_by_bare_name_on_path);
        run!(wasm_hook_relative_to_working_dir);
        run!(wasm_hook_in_a_volume);
        run!(wat_text_hook);
        run!(exit_code_stdout_and_stderr_apart);
        run!(shell_command_relayed_unchanged);
        run!(looping_probe_answers_deadline_exceeded);
        run!(trapping_hook_answers_an_exit_code);
        run!(absolute_symlink_stays_inside_the_container);
        run!(containerd_errors_come_back_verbatim);
        run!(invalid_module_answers_unknown);
        run!(other_calls_pass_through_byte_for_byte);
        run!(pod_annotations_bound_hooks);
        run!(network_policy_from_the_pod_annotation);
        run!(stop_container_cancels_a_running_hook);
        run!(noop_latency);
        run!(output_is_capped_to_what_the_kubelet_accepts);
        run!(concurrent_calls);
        run!(warm_wasm_exec_makes_no_runtime_call);
        run!(metrics_count_calls_and_outcomes);
        run!(compiling_is_not_charged_to_the_call);
        run!(proxy_starts_before_containerd);
        // Last: it restarts containerd under the proxy.
        scenario(
            &mut failures,
            "containerd_restarts_under_the_proxy",
            async { containerd_restarts_under_the_proxy(&w, &mut cd).await },
        )
        .await;

        if let Err(e) = running.stop().await {
            failures.push(e);
        }
        failures
    });
    drop(rt);
    eprintln!("all scenarios in {:.2?}", t0.elapsed());
    if !failures.is_empty() {
        eprintln!("containerd log tail:\n{}", cd.log_tail(20));
    }
    drop(cd);
    assert!(
        failures.is_empty(),
        "{} scenario(s) failed:\n- {}",
        failures.len(),
        failures.join("\n- ")
    );
}

/// Run one scenario, bounded; record its panic instead of unwinding.
async fn scenario(failures: &mut Vec<String>, name: &str, fut: impl Future<Output = ()>) {
    let t = Instant::now();
    let r = tokio::time::timeout(SCENARIO_BOUND, AssertUnwindSafe(fut).catch_unwind()).await;
    let failure = match r {
        Ok(Ok(())) => None,
        Ok(Err(p)) => Some(
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into()),
        ),
        Err(_) => Some(format!("not done within {SCENARIO_BOUND:?}")),
    };
    match failure {
        None => eprintln!("scenario {name}: ok ({:.2?})", t.elapsed()),
        Some(f) => {
            eprintln!("scenario {name}: FAILED ({:.2?}): {f}", t.elapsed());
            failures.push(format!("{name}: {f}"));
        }
    }
}

/// The `prefix`-lines of an `inspect.wasm` output, without the prefix.
fn lines_with<'a>(out: &'a str, prefix: &str) -> Vec<&'a str> {
    out.lines().filter_map(|l| l.strip_prefix(prefix)).collect()
}

/// The argv lines of `inspect.wasm`'s output.
fn argv(out: &str) -> Vec<&str> {
    lines_with(out, "argv=")
}

/// A wasm `ExecSync` through the proxy that must answer OK.
async fn exec_ok(w: &World, cmd: &[&str], timeout: i64) -> cri::ExecSyncResponse {
    w.proxy
        .exec_sync(&w.pod.container_id, cmd, timeout)
        .await
        .unwrap_or_else(|e| panic!("ExecSync {cmd:?} through the proxy: {e}"))
}

/// The reply of a call made straight to containerd and through the proxy, as sent.
async fn both_raw(w: &World, path: &str, msg: &[u8]) -> (RawReply, RawReply, RawReply) {
    let a = w.direct.raw(path, msg).await.expect("direct");
    let p = w.proxy.raw(path, msg).await.expect("through the proxy");
    let b = w.direct.raw(path, msg).await.expect("direct again");
    (a.without_date(), p.without_date(), b.without_date())
}

/// The proxy's reply must be containerd's: status, headers and trailers exactly, the body
/// byte for byte, or, since containerd writes map entries in random order (its own two
/// replies to one call can differ), the same up to field order.
fn assert_same_reply(what: &str, (a, p, b): (RawReply, RawReply, RawReply)) {
    if p == a || p == b {
        return;
    }
    let mut p_ = p.clone();
    if cri::same_up_to_field_order(&a.body, &p.body) {
        p_.body = a.body.clone();
    }
    assert!(
        p_ == a,
        "{what}: the proxy's reply differs from containerd's: {}\n containerd: {a:?}\n proxy:      {p:?}",
        difference(&a, &p)
    );
}

/// Where two replies differ, in a few words.
fn difference(a: &RawReply, b: &RawReply) -> String {
    let mut d = Vec::new();
    if a.status != b.status {
        d.push(format!("HTTP status {} vs {}", a.status, b.status));
    }
    if a.headers != b.headers {
        d.push(format!("headers {:?} vs {:?}", a.headers, b.headers));
    }
    if a.trailers != b.trailers {
        d.push(format!("trailers {:?} vs {:?}", a.trailers, b.trailers));
    }
    if a.body != b.body {
        let at = a
            .body
            .iter()
            .zip(b.body.iter())
            .take_while(|(x, y)| x == y)
            .count();
        let ctx = |body: &bytes::Bytes| {
            String::from_utf8_lossy(
                &body[at.saturating_sub(40).min(body.len())..(at + 40).min(body.len())],
            )
            .into_owned()
        };
        d.push(format!(
            "body ({} vs {} bytes) from byte {at}: {:?} vs {:?}",
            a.body.len(),
            b.body.len(),
            ctx(&a.body),
            ctx(&b.body)
        ));
    }
    d.join("; ")
}
