//! `wasmhook cri` against a real containerd (no mocks): a private containerd per test
//! (tests/common/containerd.rs), pods driven as the kubelet drives them
//! (tests/common/cri.rs), the proxy in-process in front of it.
//!
//! Needs root, containerd, runc and busybox-static; skipped with a message otherwise, or
//! failed when `WASMHOOK_REQUIRE_CONTAINERD=1` (CI).

mod common;

use std::time::Instant;

use common::containerd::{mounts_under, Containerd};
use common::cri::{self, Cri};

/// The harness alone, straight to containerd: a pod runs, `ExecSync` works, and teardown
/// leaves no process, mount, cgroup or directory behind.
#[test]
fn harness_runs_a_pod_and_leaves_nothing_behind() {
    let Some(cd) = Containerd::start() else {
        return;
    };
    let dir = cd.dir().to_path_buf();
    let socket = cd.socket();
    let cgroup = cd.cgroup_parent();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = Cri::new(&socket);
        let v = c.version().await.expect("Version");
        assert_eq!(v.runtime_name, "containerd");
        assert_eq!(v.runtime_api_version, "v1");

        let t = Instant::now();
        let pod = cri::run_busybox_pod(&c, &cd, "harness", &[("wasmhook.dev/example", "yes")])
            .await
            .unwrap_or_else(|e| panic!("pod: {e}\n{}", cd.log_tail(30)));
        eprintln!("pod running in {:.2?}", t.elapsed());
        std::fs::write(pod.data.join("input.txt"), "from the host\n").unwrap();

        let r = c
            .exec_sync(&pod.container_id, &["/bin/true"], 0)
            .await
            .expect("ExecSync true");
        assert_eq!(
            (r.exit_code, r.stdout(), r.stderr()),
            (0, String::new(), String::new())
        );

        let r = c
            .exec_sync(
                &pod.container_id,
                &["/bin/sh", "-c", "echo out; echo err >&2; exit 3"],
                5,
            )
            .await
            .expect("ExecSync sh");
        assert_eq!(
            (r.exit_code, r.stdout(), r.stderr()),
            (3, "out\n".into(), "err\n".into())
        );

        // The container's view: env, cwd, the volumes (read-only /data, writable /work).
        let r = c
            .exec_sync(
                &pod.container_id,
                &[
                    "/bin/sh",
                    "-c",
                    "echo $GREETING $PATH; pwd; cat /data/input.txt; touch /data/x 2>/dev/null \
                     && echo data-writable; echo hi > /work/from-exec",
                ],
                0,
            )
            .await
            .unwrap();
        assert_eq!(
            r.stdout(),
            format!("hi {}\n/tmp\nfrom the host\n", cri::PATH_ENV),
            "stderr: {}",
            r.stderr()
        );
        assert_eq!(
            std::fs::read_to_string(pod.work.join("from-exec")).unwrap(),
            "hi\n"
        );

        // The pod annotations come back from PodSandboxStatus (where the proxy reads them),
        // and the verbose ContainerStatus has the pid and the runtime spec.
        let s = c.pod_sandbox_status(&pod.sandbox_id).await.unwrap();
        let s = s.status.unwrap();
        assert_eq!(
            s.annotations
                .get("wasmhook.dev/example")
                .map(String::as_str),
            Some("yes")
        );
        assert_eq!(s.state, cri::SANDBOX_READY);
        let st = c.container_status(&pod.container_id, true).await.unwrap();
        assert_eq!(st.status.as_ref().unwrap().state, cri::CONTAINER_RUNNING);
        let info: serde_json::Value = serde_json::from_str(&st.info["info"]).unwrap();
        assert!(info["pid"].as_u64().unwrap() > 0, "{info}");
        assert_eq!(info["runtimeSpec"]["process"]["cwd"], "/tmp");

        // Errors are containerd's own.
        let e = c
            .exec_sync("0123456789abcdef", &["/bin/true"], 0)
            .await
            .unwrap_err();
        assert_eq!(e.code, wasmhook::grpc::Code::NotFound, "{e}");
    });
    drop(rt);

    let sleeping: Vec<String> = processes_in_cgroup(&cgroup);
    assert!(
        !sleeping.is_empty(),
        "the pod's processes are not in cgroup {cgroup}"
    );
    drop(cd);

    // Nothing left: no directory, mount, process in the pods' cgroups, shim, cgroup.
    assert!(!dir.exists(), "{} is still there", dir.display());
    assert!(
        mounts_under(&dir).is_empty(),
        "mounts left: {:?}",
        mounts_under(&dir)
    );
    assert_eq!(
        processes_in_cgroup(&cgroup),
        Vec::<String>::new(),
        "processes left"
    );
    assert_eq!(
        processes_mentioning(&socket.display().to_string()),
        Vec::<String>::new()
    );
    for p in common::containerd::cgroup_dirs(cgroup.trim_start_matches('/')) {
        assert!(!p.exists(), "cgroup {} left", p.display());
    }
}

/// `pid cmdline` of the processes whose cgroup path contains `cgroup`.
fn processes_in_cgroup(cgroup: &str) -> Vec<String> {
    let needle = format!("{cgroup}/");
    pids()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .is_ok_and(|c| c.contains(&needle))
        })
        .map(describe)
        .collect()
}

/// `pid cmdline` of the processes whose command line contains `s`.
fn processes_mentioning(s: &str) -> Vec<String> {
    let me = std::process::id();
    pids()
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(s))
        })
        .map(describe)
        .collect()
}

fn pids() -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
}

fn describe(pid: u32) -> String {
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    format!("{pid} {}", String::from_utf8_lossy(&cmd).replace('\0', " "))
}

// ---------------------------------------------------------------------------------------
// The proxy in front of containerd

use std::collections::BTreeSet;
use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::time::Duration;

use common::cri::{hooks, Pod, RawReply, RunningProxy};
use futures::FutureExt;
use prost::Message;
use wasmhook::cri::CriProxyConfig;
use wasmhook::grpc::Code;

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

/// `/hooks/inspect.wasm` shipped in the image: argv, env (the container's plus
/// `WASMHOOK_*`), files (the volumes, /data read-only), exit code, stdout and stderr apart.
async fn wasm_hook_in_the_image(w: &World, _: &Containerd) {
    let _ = std::fs::remove_file(w.pod.work.join("out.txt"));
    let r = exec_ok(w, &["/hooks/inspect.wasm", "two words", "--flag=x"], 0).await;
    let out = r.stdout();
    assert_eq!(r.exit_code, 0, "stdout: {out}\nstderr: {}", r.stderr());
    assert_eq!(r.stderr(), "inspect: to stderr\n");
    assert_eq!(argv(&out), ["/hooks/inspect.wasm", "two words", "--flag=x"]);

    // env: what the native exec sees (the runtime spec's env; runc adds HOME), plus the
    // pod's identity from the kubelet's labels.
    let native = w
        .direct
        .exec_sync(&w.pod.container_id, &["/bin/env"], 0)
        .await
        .unwrap()
        .stdout();
    let native: BTreeSet<&str> = native.lines().filter(|l| !l.starts_with("HOME=")).collect();
    let wasm: BTreeSet<&str> = lines_with(&out, "env:").into_iter().collect();
    let missing: Vec<_> = native.difference(&wasm).collect();
    assert!(
        missing.is_empty(),
        "env of the container missing in the hook: {missing:?}\nhook env: {wasm:?}"
    );
    for want in [
        "GREETING=hi",
        &format!("PATH={}", cri::PATH_ENV),
        "WASMHOOK_POD=main",
        &format!("WASMHOOK_NAMESPACE={}", cri::POD_NAMESPACE),
        "WASMHOOK_CONTAINER=app",
    ] {
        assert!(wasm.contains(want), "{want} not in the hook's env {wasm:?}");
    }
    // Only the pod's identity (and, for a hook, its kind, as in `wasmhook run`) is added.
    let extra: Vec<_> = wasm
        .difference(&native)
        .filter(|v| {
            let name = v.split('=').next().unwrap();
            ![
                "WASMHOOK_POD",
                "WASMHOOK_NAMESPACE",
                "WASMHOOK_CONTAINER",
                "WASMHOOK_HOOK",
                "HOME",
            ]
            .contains(&name)
        })
        .collect();
    assert!(
        extra.is_empty(),
        "env the container does not have: {extra:?}"
    );
    // A probe (timeout > 0) is no hook: the same identity, no WASMHOOK_HOOK.
    let r = exec_ok(w, &["/hooks/inspect.wasm"], 1).await;
    assert_eq!(r.exit_code, 0, "{r:?}");
    let probe_env = lines_with(&r.stdout(), "env:").join(" ");
    assert!(probe_env.contains("WASMHOOK_POD=main"), "{probe_env}");
    assert!(
        !probe_env.contains("WASMHOOK_HOOK="),
        "a probe sees {probe_env}"
    );

    // Files: the volumes at their paths, /data read-only; nothing else of the host.
    let preopens = lines_with(&out, "preopen:");
    for want in ["/data", "/work"] {
        assert!(
            preopens.contains(&want),
            "{want} not preopened: {preopens:?}"
        );
    }
    assert!(
        !preopens.contains(&"/"),
        "the whole root is preopened: {preopens:?}"
    );
    assert_eq!(lines_with(&out, "data:"), ["volume says hi"]);
    assert_eq!(
        lines_with(&out, "data-write:"),
        ["denied"],
        "/data is mounted read-only"
    );
    assert!(!w.pod.data.join("ro-probe.txt").exists());
    assert_eq!(
        std::fs::read_to_string(w.pod.work.join("out.txt"))
            .expect("the hook's /work/out.txt on the host"),
        "written by inspect.wasm\n"
    );
}

/// A bare module name is looked up on the container's PATH (`/hooks` is on it).
async fn wasm_hook_by_bare_name_on_path(w: &World, _: &Containerd) {
    let r = exec_ok(w, &["inspect.wasm", "bare"], 0).await;
    assert_eq!(r.exit_code, 0, "stderr: {}", r.stderr());
    assert_eq!(argv(&r.stdout()), ["inspect.wasm", "bare"]);
}

/// A relative path resolves against the container's working directory (`/tmp`).
async fn wasm_hook_relative_to_working_dir(w: &World, _: &Containerd) {
    let r = exec_ok(w, &["../hooks/inspect.wasm"], 0).await;
    assert_eq!(r.exit_code, 0, "stderr: {}", r.stderr());
    assert_eq!(argv(&r.stdout()), ["../hooks/inspect.wasm"]);
}

/// A module shipped in a volume (`/data/vol-inspect.wasm`) runs too.
async fn wasm_hook_in_a_volume(w: &World, _: &Containerd) {
    let _ = std::fs::remove_file(w.pod.work.join("out.txt"));
    let r = exec_ok(w, &["/data/vol-inspect.wasm", "from-volume"], 0).await;
    assert_eq!(r.exit_code, 0, "stderr: {}", r.stderr());
    let out = r.stdout();
    assert_eq!(argv(&out), ["/data/vol-inspect.wasm", "from-volume"]);
    assert_eq!(lines_with(&out, "data:"), ["volume says hi"]);
    assert!(lines_with(&out, "env:").contains(&"WASMHOOK_POD=main"));
    assert_eq!(
        std::fs::read_to_string(w.pod.work.join("out.txt")).unwrap(),
        "written by inspect.wasm\n"
    );
}

/// `.wat` text runs as a module (`examples/hooks/bin/hello.wat` in the image).
async fn wat_text_hook(w: &World, _: &Containerd) {
    let r = exec_ok(w, &["/hooks/hello.wat"], 0).await;
    assert_eq!(
        (r.exit_code, r.stdout(), r.stderr()),
        (0, "hello from a WAT hook\n".into(), String::new())
    );
}

/// `proc_exit(3)`: exit code 3, stdout and stderr each in their own field.
async fn exit_code_stdout_and_stderr_apart(w: &World, _: &Containerd) {
    for timeout in [0, 5] {
        let r = exec_ok(w, &["/hooks/fail.wasm"], timeout).await;
        assert_eq!(
            (r.exit_code, r.stdout(), r.stderr()),
            (3, "about to fail\n".into(), "failing on purpose\n".into()),
            "timeout {timeout}"
        );
    }
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

/// A shell command is not wasm: relayed to containerd (runc), reply identical.
async fn shell_command_relayed_unchanged(w: &World, _: &Containerd) {
    let cmd = ["/bin/sh", "-c", "echo out; echo err >&2; exit 3"];
    for timeout in [0, 5] {
        let msg = cri::exec_sync_request(&w.pod.container_id, &cmd, timeout).encode_to_vec();
        let replies = both_raw(w, "ExecSync", &msg).await;
        let r =
            cri::ExecSyncResponse::decode(wasmhook::grpc::unframe(replies.1.body.clone()).unwrap())
                .unwrap();
        assert_eq!(
            (r.exit_code, r.stdout(), r.stderr()),
            (3, "out\n".into(), "err\n".into())
        );
        assert_same_reply(&format!("ExecSync sh (timeout {timeout})"), replies);
    }
}

/// A probe (`timeout: 1`) whose module never returns: `DeadlineExceeded` at its timeout, as
/// containerd answers a native probe; and the proxy keeps serving.
async fn looping_probe_answers_deadline_exceeded(w: &World, _: &Containerd) {
    let t = Instant::now();
    let r = w
        .proxy
        .exec_sync(&w.pod.container_id, &["/hooks/loop.wasm"], 1)
        .await;
    let took = t.elapsed();
    eprintln!("  looping probe (timeout 1 s) answered after {took:.3?}: {r:?}");
    let e = r.expect_err("a looping probe must not answer OK");
    assert_eq!(e.code, Code::DeadlineExceeded, "{e}");
    assert!(
        took >= Duration::from_millis(900),
        "answered before its timeout: {took:?}"
    );
    assert!(
        took < Duration::from_secs(2),
        "1 s probe answered after {took:?}"
    );

    // containerd's own answer to a native probe past its timeout, for comparison.
    let n = w
        .direct
        .exec_sync(&w.pod.container_id, &["/bin/sleep", "5"], 1)
        .await
        .expect_err("native sleep 5 with timeout 1");
    assert_eq!(n.code, Code::DeadlineExceeded);
    assert_eq!(
        e.message, n.message,
        "the proxy's text differs from containerd's"
    );

    // Still serving, wasm and relayed.
    let r = exec_ok(w, &["/hooks/noop.wasm"], 1).await;
    assert_eq!(r.exit_code, 0);
    w.proxy.version().await.expect("Version after the timeout");
}

/// A hook (`timeout: 0`) that traps: OK, a non-zero exit code (134, a crashed process), the
/// reason on stderr; output before the trap kept.
async fn trapping_hook_answers_an_exit_code(w: &World, _: &Containerd) {
    for timeout in [0, 3] {
        let r = exec_ok(w, &["/hooks/trap.wasm"], timeout).await;
        eprintln!(
            "  trap (timeout {timeout}): exit {} stderr {:?}",
            r.exit_code,
            r.stderr()
        );
        assert_eq!(r.exit_code, 134, "stderr: {}", r.stderr());
        assert_eq!(r.stdout(), "started\n");
        assert!(
            r.stderr().contains("unreachable"),
            "no reason on stderr: {:?}",
            r.stderr()
        );
    }
}

/// `/hooks/escape.wasm` is an absolute symlink to a module that exists on the host only:
/// resolved inside the container it does not exist, so the call goes to containerd and its
/// own "no such file or directory" comes back; the host module never runs.
async fn absolute_symlink_stays_inside_the_container(w: &World, cd: &Containerd) {
    let target = cd.host_only().join("escape.wasm");
    assert!(
        std::fs::read(&target).unwrap().starts_with(b"\0asm"),
        "the host module is there"
    );
    let p = w
        .proxy
        .exec_sync(&w.pod.container_id, &["/hooks/escape.wasm"], 0)
        .await;
    let d = w
        .direct
        .exec_sync(&w.pod.container_id, &["/hooks/escape.wasm"], 0)
        .await;
    eprintln!("  escape through the proxy: {p:?}");
    if let Ok(r) = &p {
        assert!(
            !r.stdout().contains("ESCAPED"),
            "the host's module ran: {r:?}"
        );
    }
    let p = p.expect_err("the symlink's target does not exist in the container");
    let d = d.expect_err("containerd cannot exec it either");
    assert_eq!(p.code, d.code);
    assert_eq!(
        cri::normalize_ids(&p.message),
        cri::normalize_ids(&d.message)
    );
    assert!(p.message.contains("no such file or directory"), "{p}");
}

/// What the proxy does not run is containerd's to answer, errors included.
async fn containerd_errors_come_back_verbatim(w: &World, _: &Containerd) {
    // Unknown container: NotFound, no ids in the text: byte for byte.
    let msg =
        cri::exec_sync_request("0123456789abcdef", &["/hooks/inspect.wasm"], 0).encode_to_vec();
    let replies = both_raw(w, "ExecSync", &msg).await;
    assert_eq!(
        replies.1.grpc_status().as_deref(),
        Some("5"),
        "{:?}",
        replies.1
    );
    assert_same_reply("ExecSync unknown container", replies);
    let e = w
        .proxy
        .exec_sync("0123456789abcdef", &["/hooks/noop.wasm"], 0)
        .await
        .unwrap_err();
    assert_eq!(e.code, Code::NotFound, "{e}");

    // Empty command, a text file named .wasm, a module that is not there: containerd's text
    // (with its random exec id).
    for (cmd, text) in [
        (&[][..], "args must not be empty"),
        (&["/hooks/not-wasm.wasm"][..], "exec format error"),
        (&["/hooks/missing.wasm"][..], "no such file or directory"),
        (&["missing.wasm"][..], "executable file not found in $PATH"),
    ] {
        let p = w.proxy.exec_sync(&w.pod.container_id, cmd, 0).await;
        let d = w.direct.exec_sync(&w.pod.container_id, cmd, 0).await;
        eprintln!("  {cmd:?}: {p:?}");
        // runc reports a file it cannot exec as exit 1 + stderr, the rest as gRPC errors.
        match (p, d) {
            (Err(p), Err(d)) => {
                assert_eq!(
                    (p.code, cri::normalize_ids(&p.message)),
                    (d.code, cri::normalize_ids(&d.message)),
                    "{cmd:?}"
                );
                assert!(p.message.contains(text), "{cmd:?}: {p}");
            }
            (Ok(p), Ok(d)) => {
                assert_eq!(p, d, "{cmd:?}");
                assert_ne!(p.exit_code, 0, "{cmd:?}");
                assert!(p.stderr().contains(text), "{cmd:?}: {p:?}");
            }
            (p, d) => panic!("{cmd:?}: the proxy answered {p:?}, containerd {d:?}"),
        }
    }
}

/// A file with the wasm header that is no valid module is wasmhook's to refuse: gRPC
/// `Unknown` (the class of containerd's "OCI runtime exec failed"), a clear message.
async fn invalid_module_answers_unknown(w: &World, _: &Containerd) {
    for timeout in [0, 1] {
        let e = w
            .proxy
            .exec_sync(&w.pod.container_id, &["/hooks/bad.wasm"], timeout)
            .await
            .expect_err("an invalid module");
        eprintln!("  bad.wasm (timeout {timeout}): {e}");
        assert_eq!(e.code, Code::Unknown, "{e}");
        assert!(
            e.message
                .starts_with("failed to exec in container: wasmhook: "),
            "{e}"
        );
        assert!(e.message.contains("/hooks/bad.wasm"), "{e}");
    }
}

/// Calls the proxy does not own come back exactly as containerd sends them.
async fn other_calls_pass_through_byte_for_byte(w: &World, _: &Containerd) {
    let id = &w.pod.container_id;
    let calls: Vec<(&str, Vec<u8>)> = vec![
        (
            "Version",
            cri::VersionRequest {
                version: "v1".into(),
            }
            .encode_to_vec(),
        ),
        (
            "ListContainers",
            cri::ListContainersRequest {
                filter: Some(cri::ContainerFilter {
                    id: id.clone(),
                    ..Default::default()
                }),
            }
            .encode_to_vec(),
        ),
        (
            "ContainerStatus",
            cri::ContainerStatusRequest {
                container_id: id.clone(),
                verbose: false,
            }
            .encode_to_vec(),
        ),
        (
            "ContainerStatus",
            cri::ContainerStatusRequest {
                container_id: id.clone(),
                verbose: true,
            }
            .encode_to_vec(),
        ),
        (
            "PodSandboxStatus",
            cri::PodSandboxStatusRequest {
                pod_sandbox_id: w.pod.sandbox_id.clone(),
                verbose: false,
            }
            .encode_to_vec(),
        ),
        (
            "/runtime.v1.ImageService/ImageStatus",
            cri::ImageStatusRequest {
                image: Some(cri::ImageSpec {
                    image: common::containerd::BUSYBOX.into(),
                    ..Default::default()
                }),
                verbose: false,
            }
            .encode_to_vec(),
        ),
        // A field number no CRI message has: containerd ignores it, so must the relay.
        ("Version", {
            let mut m = cri::VersionRequest {
                version: "v1".into(),
            }
            .encode_to_vec();
            m.extend_from_slice(&[0xf8, 0x06, 0x2a]); // field 111, varint 42
            m
        }),
    ];
    for (path, msg) in calls {
        let replies = both_raw(w, path, &msg).await;
        assert_eq!(
            replies.1.grpc_status().as_deref(),
            Some("0"),
            "{path}: {:?}",
            replies.1
        );
        assert!(replies.1.body.len() > 5, "{path}: empty reply");
        assert_same_reply(path, replies);
    }

    // A method containerd does not have: its own Unimplemented.
    let replies = both_raw(w, "/runtime.v1.RuntimeService/NoSuchMethod", &[]).await;
    assert_eq!(
        replies.1.grpc_status().as_deref(),
        Some("12"),
        "{:?}",
        replies.1
    );
    eprintln!("  NoSuchMethod: {:?}", replies.1.grpc_message());
    assert_same_reply("NoSuchMethod", replies);
}

/// The pod's `wasmhook.dev/*` annotations (read from PodSandboxStatus) override the CLI
/// defaults: a hook timeout of 1 s ends a looping hook with exit 124 (as `timeout(1)`),
/// a fuel budget with exit 152 (128 + SIGXCPU).
async fn pod_annotations_bound_hooks(w: &World, cd: &Containerd) {
    let limited = cri::run_busybox_pod(
        &w.proxy,
        cd,
        "limited",
        &[("wasmhook.dev/hook-timeout", "1s")],
    )
    .await
    .unwrap();
    let t = Instant::now();
    let r = w
        .proxy
        .exec_sync(&limited.container_id, &["/hooks/loop.wasm"], 0)
        .await;
    let took = t.elapsed();
    eprintln!("  hook-timeout 1s: {took:.3?}: {r:?}");
    let r = r.expect("a hook past its timeout answers OK with an exit code");
    assert_eq!(r.exit_code, 124, "stderr: {}", r.stderr());
    assert!(r.stderr().contains("timed out"), "{:?}", r.stderr());
    assert!(
        took < Duration::from_secs(3),
        "took {took:?} with a 1 s hook timeout"
    );

    let fueled = cri::run_busybox_pod(
        &w.proxy,
        cd,
        "fueled",
        &[("wasmhook.dev/hook-fuel", "1000000")],
    )
    .await
    .unwrap();
    let r = w
        .proxy
        .exec_sync(&fueled.container_id, &["/hooks/loop.wasm"], 0)
        .await;
    eprintln!("  hook-fuel 1000000: {r:?}");
    let r = r.expect("out of fuel answers OK with an exit code");
    assert_eq!(r.exit_code, 152, "stderr: {}", r.stderr());
    // The same module without the annotation still has the default (no fuel): noop is fine.
    let r = exec_ok(w, &["/hooks/noop.wasm"], 0).await;
    assert_eq!(r.exit_code, 0);

    for p in [&limited, &fueled] {
        w.proxy.stop_pod_sandbox(&p.sandbox_id).await.unwrap();
        w.proxy.remove_pod_sandbox(&p.sandbox_id).await.unwrap();
    }
}

/// The pod's `wasmhook.dev/hook-network` policy governs a wasm exec's sockets: an allow-list
/// permits its entry and refuses the rest, each refusal named on stderr; without the
/// annotation the exec has no network.
async fn network_policy_from_the_pod_annotation(w: &World, cd: &Containerd) {
    let allowed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (allowed, other) = (allowed.local_addr().unwrap(), other.local_addr().unwrap());
    let policy = format!("127.0.0.1:{}", allowed.port());
    let pod = cri::run_busybox_pod(
        &w.proxy,
        cd,
        "netpolicy",
        &[("wasmhook.dev/hook-network", &policy)],
    )
    .await
    .unwrap();
    let probes = [
        "/hooks/netprobe.wasm".to_string(),
        format!("tcp:{allowed}"),
        format!("tcp:{other}"),
    ];
    let argv: Vec<&str> = probes.iter().map(String::as_str).collect();
    let r = w
        .proxy
        .exec_sync(&pod.container_id, &argv, 0)
        .await
        .expect("a wasm exec answers OK");
    assert_eq!(r.exit_code, 0, "stderr: {}", r.stderr());
    assert_eq!(
        String::from_utf8_lossy(&r.stdout),
        format!("tcp {allowed} ok\ntcp {other} err access-denied\n")
    );
    assert_eq!(
        r.stderr(),
        format!("wasmhook: network policy refused tcp connect to {other}\n")
    );
    // The shared pod has no annotation: no network at all.
    let r = exec_ok(w, &argv, 0).await;
    assert_eq!(
        String::from_utf8_lossy(&r.stdout),
        format!("tcp {allowed} err access-denied\ntcp {other} err access-denied\n")
    );
    w.proxy.stop_pod_sandbox(&pod.sandbox_id).await.unwrap();
    w.proxy.remove_pod_sandbox(&pod.sandbox_id).await.unwrap();
}

/// `StopContainer` (through the proxy) cancels that container's running wasm hook: its
/// `ExecSync` answers soon after, not at the hook timeout.
async fn stop_container_cancels_a_running_hook(w: &World, _: &Containerd) {
    let victim = cri::add_container(&w.proxy, &w.pod, "victim")
        .await
        .unwrap();
    let proxy_socket: PathBuf = w.proxy.socket().to_path_buf();
    let id = victim.clone();
    let hook = tokio::spawn(async move {
        let c = Cri::new(proxy_socket);
        let r = c.exec_sync(&id, &["/hooks/loop.wasm"], 0).await;
        (r, Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !hook.is_finished(),
        "the looping hook ended by itself: {:?}",
        hook.await
    );
    let t = Instant::now();
    w.proxy
        .stop_container(&victim, 0)
        .await
        .expect("StopContainer");
    let stopped = Instant::now();
    eprintln!("  StopContainer took {:.3?}", stopped - t);
    let (r, answered) = tokio::time::timeout(HOOK_TIMEOUT + Duration::from_secs(5), hook)
        .await
        .expect("the hook's ExecSync never answered")
        .unwrap();
    let after = answered.saturating_duration_since(stopped);
    eprintln!("  hook answered {after:.3?} after StopContainer returned: {r:?}");
    assert!(
        after < Duration::from_secs(2),
        "answered {after:?} after StopContainer"
    );
    match r {
        Ok(r) => assert_ne!(r.exit_code, 0, "a cancelled hook succeeded: {r:?}"),
        Err(e) => eprintln!("  (a gRPC error: {e})"),
    }
    let st = w.proxy.container_status(&victim, false).await.unwrap();
    assert_eq!(st.status.unwrap().state, cri::CONTAINER_EXITED);
    // A container that is not running: containerd's own error, wasm module or not.
    for cmd in [&["/hooks/noop.wasm"][..], &["/bin/true"][..]] {
        let p = w.proxy.exec_sync(&victim, cmd, 0).await;
        let d = w.direct.exec_sync(&victim, cmd, 0).await;
        eprintln!("  {cmd:?} in the stopped container: {p:?}");
        let (p, d) = (p.expect_err("proxy"), d.expect_err("containerd"));
        assert_eq!((p.code, &p.message), (d.code, &d.message), "{cmd:?}");
        assert!(p.message.contains("CONTAINER_EXITED"), "{p}");
    }
    w.proxy
        .remove_container(&victim)
        .await
        .expect("RemoveContainer");
    // The pod's other container is unaffected.
    let r = exec_ok(w, &["/hooks/noop.wasm"], 0).await;
    assert_eq!(r.exit_code, 0);
}

/// Not a benchmark (BENCHMARKS.md has that): the medians of a wasm noop through the proxy
/// and of a native `/bin/true`, printed; the wasm one must at least be the faster.
async fn noop_latency(w: &World, _: &Containerd) {
    async fn median(w: &World, cri: &Cri, cmd: &[&str], n: usize) -> Duration {
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            let r = cri.exec_sync(&w.pod.container_id, cmd, 1).await.unwrap();
            v.push(t.elapsed());
            assert_eq!(r.exit_code, 0);
        }
        v.sort();
        v[n / 2]
    }
    let wasm = median(w, &w.proxy, &["/hooks/noop.wasm"], 41).await;
    let native = median(w, &w.direct, &["/bin/true"], 11).await;
    let relayed = median(w, &w.proxy, &["/bin/true"], 11).await;
    eprintln!(
        "  ExecSync medians: wasm noop through the proxy {wasm:.3?}, /bin/true straight to \
         containerd {native:.3?}, relayed {relayed:.3?} ({:.0}x)",
        native.as_secs_f64() / wasm.as_secs_f64()
    );
    assert!(wasm < native, "wasm {wasm:?} vs native {native:?}");
}

/// 17 MiB on stdout: OK, the output capped so that the reply stays within the kubelet's
/// 16 MiB message limit, stderr kept whole, no error.
async fn output_is_capped_to_what_the_kubelet_accepts(w: &World, _: &Containerd) {
    let r = exec_ok(w, &["/hooks/big.wasm"], 5).await;
    let (out, err, code) = (r.stdout.len(), r.stderr(), r.exit_code);
    eprintln!(
        "  big.wasm: exit {code}, stdout {out} bytes, stderr {err:?}, message {} bytes",
        r.encoded_len()
    );
    assert_eq!(code, 0);
    assert_eq!(err, "big: done\n");
    assert!(
        r.encoded_len() <= 16 << 20,
        "reply of {} bytes",
        r.encoded_len()
    );
    assert!(out >= (16 << 20) - 4096, "stdout cut to {out} bytes");
    assert!(r.stdout.iter().all(|&b| b == b'x'));
}

/// Wasm calls and relayed ones at the same time, on one connection: all answer, right.
async fn concurrent_calls(w: &World, _: &Containerd) {
    let t = Instant::now();
    let wasm = (0..16).map(|i| async move {
        let arg = format!("call-{i}");
        let r = exec_ok(w, &["/hooks/inspect.wasm", &arg], 0).await;
        assert_eq!(r.exit_code, 0, "{r:?}");
        assert_eq!(argv(&r.stdout())[1], arg);
    });
    let native = (0..4).map(|i| async move {
        let r = w
            .proxy
            .exec_sync(
                &w.pod.container_id,
                &["/bin/echo", &format!("native-{i}")],
                5,
            )
            .await
            .unwrap();
        assert_eq!((r.exit_code, r.stdout()), (0, format!("native-{i}\n")));
    });
    futures::future::join(
        futures::future::join_all(wasm),
        futures::future::join_all(native),
    )
    .await;
    eprintln!("  16 wasm + 4 native ExecSync at once: {:.2?}", t.elapsed());
}

/// A proxy whose runtime socket does not exist yet starts all the same and answers
/// `Unavailable`; once the socket appears (here: a symlink to containerd's), calls go
/// through. Then it shuts down, removing its socket.
/// `GET /metrics` from the proxy's metrics address, the body as text.
async fn scrape(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.0 200"), "{out}");
    out
}

/// The value of the metric line starting with `name` (labels included), or 0.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Once a container's context is cached, wasm calls make no call to containerd at all.
async fn warm_wasm_exec_makes_no_runtime_call(w: &World, _: &Containerd) {
    exec_ok(w, &["/hooks/noop.wasm"], 0).await;
    let before = metric(
        &scrape(w.metrics).await,
        "wasmhook_cri_runtime_lookups_total",
    );
    assert!(
        before >= 2.0,
        "the first call looked the container up: {before}"
    );
    for _ in 0..5 {
        assert_eq!(exec_ok(w, &["/hooks/noop.wasm"], 1).await.exit_code, 0);
    }
    let after = metric(
        &scrape(w.metrics).await,
        "wasmhook_cri_runtime_lookups_total",
    );
    assert_eq!(
        after, before,
        "warm wasm calls looked the container up again"
    );
}

/// `/metrics` counts the kubelet's calls by method, wasm calls by outcome, their latency.
async fn metrics_count_calls_and_outcomes(w: &World, _: &Containerd) {
    let before = scrape(w.metrics).await;
    let exec = r#"wasmhook_cri_calls_total{service="runtime.v1.RuntimeService",method="ExecSync"}"#;
    let ok = r#"wasmhook_cri_wasm_exec_total{outcome="ok"}"#;
    let exit = r#"wasmhook_cri_wasm_exec_total{outcome="exit"}"#;
    let native = r#"wasmhook_cri_wasm_exec_total{outcome="relayed-native"}"#;
    let trap = r#"wasmhook_cri_wasm_exec_total{outcome="trap"}"#;
    exec_ok(w, &["/hooks/noop.wasm"], 0).await;
    exec_ok(w, &["/hooks/fail.wasm"], 0).await;
    exec_ok(w, &["/hooks/trap.wasm"], 0).await;
    exec_ok(w, &["/bin/true"], 0).await;
    w.proxy.version().await.unwrap();
    let after = scrape(w.metrics).await;
    let d = |name: &str| metric(&after, name) - metric(&before, name);
    assert_eq!(d(exec), 4.0, "{after}");
    assert_eq!(
        (d(ok), d(exit), d(trap), d(native)),
        (1.0, 1.0, 1.0, 1.0),
        "{after}"
    );
    assert!(
        d(r#"wasmhook_cri_calls_total{service="runtime.v1.RuntimeService",method="Version"}"#)
            >= 1.0
    );
    assert!(
        d("wasmhook_cri_wasm_exec_duration_seconds_count") >= 3.0,
        "{after}"
    );
    // This scrape's own connection is not a CRI call: nothing is in flight now.
    assert_eq!(
        metric(&after, "wasmhook_cri_in_flight_calls"),
        0.0,
        "{after}"
    );
}

/// A module the node has not compiled yet: its compile has a bound of its own and goes on
/// past it in the background; the call that hit the bound gets `Unknown` (an errored
/// probe, not a failed one), and a later call runs the compiled module.
async fn compiling_is_not_charged_to_the_call(w: &World, cd: &Containerd) {
    let running = RunningProxy::start(CriProxyConfig {
        listen: cd.dir().join("proxy-compile.sock"),
        runtime_endpoint: cd.socket(),
        compile_timeout: Duration::from_micros(1),
        ..CriProxyConfig::default()
    })
    .await;
    let c = running.client();
    let e = c
        .exec_sync(&w.pod.container_id, &["/hooks/hello.wat"], 1)
        .await
        .expect_err("a 1 µs compile bound");
    assert_eq!(e.code, Code::Unknown, "{e}");
    assert!(e.message.contains("compiling took longer than"), "{e}");
    let mut ran = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Ok(r) = c
            .exec_sync(&w.pod.container_id, &["/hooks/hello.wat"], 1)
            .await
        {
            ran = Some(r);
            break;
        }
    }
    let r = ran.expect("the background compile finished and later calls use it");
    assert_eq!(r.exit_code, 0, "{}", r.stderr());
    assert!(r.stdout().contains("hello"), "{}", r.stdout());
    running.stop().await.unwrap();
}

async fn proxy_starts_before_containerd(_: &World, cd: &Containerd) {
    let late = cd.dir().join("late.sock");
    let running = RunningProxy::start(CriProxyConfig {
        listen: cd.dir().join("proxy-early.sock"),
        runtime_endpoint: late.clone(),
        ..CriProxyConfig::default()
    })
    .await;
    let c = running.client();
    let e = c.version().await.expect_err("no runtime yet");
    eprintln!("  before the runtime: {e}");
    assert_eq!(e.code, Code::Unavailable, "{e}");
    std::os::unix::fs::symlink(cd.socket(), &late).unwrap();
    let v = c
        .version()
        .await
        .expect("Version once the runtime is there");
    assert_eq!(v.runtime_name, "containerd");
    running.stop().await.unwrap();
    let _ = std::fs::remove_file(&late);
}

/// containerd killed under a running proxy: calls answer `Unavailable`; once containerd is
/// back (same root and state: the pod is still there) the proxy reconnects by itself.
async fn containerd_restarts_under_the_proxy(w: &World, cd: &mut Containerd) {
    // Warm: the proxy is connected.
    w.proxy.version().await.unwrap();
    cd.kill();
    let e = w
        .proxy
        .version()
        .await
        .expect_err("Version with containerd down");
    eprintln!("  containerd down: {e}");
    assert_eq!(e.code, Code::Unavailable, "{e}");
    let e = w
        .proxy
        .exec_sync(&w.pod.container_id, &["/bin/true"], 1)
        .await
        .expect_err("native ExecSync with containerd down");
    assert_eq!(e.code, Code::Unavailable, "{e}");
    // A wasm call on a warm context makes no call to containerd at all.
    let r = w
        .proxy
        .exec_sync(&w.pod.container_id, &["/hooks/noop.wasm"], 1)
        .await;
    eprintln!("  wasm ExecSync with containerd down: {r:?}");
    assert_eq!(r.expect("wasm ExecSync on a warm context").exit_code, 0);

    let t = Instant::now();
    cd.restart();
    eprintln!("  containerd back in {:.2?}", t.elapsed());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut tries = 0;
    let v = loop {
        tries += 1;
        match w.proxy.version().await {
            Ok(v) => break v,
            Err(e) if Instant::now() < deadline => {
                eprintln!("  Version after the restart: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the proxy did not reconnect within 10 s: {e}"),
        }
    };
    assert_eq!(v.runtime_name, "containerd");
    assert_eq!(tries, 1, "the first call after containerd came back failed");
    let r = w
        .proxy
        .exec_sync(&w.pod.container_id, &["/bin/true"], 5)
        .await
        .expect("native after restart");
    assert_eq!(r.exit_code, 0);
    let r = exec_ok(w, &["/hooks/inspect.wasm"], 0).await;
    assert_eq!(r.exit_code, 0, "stderr: {}", r.stderr());
    assert_same_reply(
        "Version after restart",
        both_raw(
            w,
            "Version",
            &cri::VersionRequest {
                version: "v1".into(),
            }
            .encode_to_vec(),
        )
        .await,
    );
}

/// The reply comparison forgives containerd's random map order, and nothing else.
#[test]
fn field_order_comparison_is_sound() {
    use cri::same_up_to_field_order as same;
    let frame = |m: &[u8]| wasmhook::grpc::frame(m).to_vec();
    let entry = |k: &str, v: &str| {
        let mut e = vec![0x0a, k.len() as u8];
        e.extend_from_slice(k.as_bytes());
        e.extend_from_slice(&[0x12, v.len() as u8]);
        e.extend_from_slice(v.as_bytes());
        e
    };
    // A message with field 1 = "id" and a map<string,string> at field 8, entries in order.
    let msg = |entries: &[(&str, &str)]| {
        let mut m = vec![0x0a, 2, b'i', b'd'];
        for (k, v) in entries {
            let e = entry(k, v);
            m.push(0x42);
            m.push(e.len() as u8);
            m.extend_from_slice(&e);
        }
        frame(&m)
    };
    let ab = msg(&[("a", "1"), ("b", "2")]);
    assert!(same(&ab, &msg(&[("b", "2"), ("a", "1")])));
    assert!(!same(&ab, &msg(&[("a", "2"), ("b", "1")])));
    assert!(!same(&ab, &msg(&[("a", "1"), ("c", "2")])));
    assert!(!same(&ab, &msg(&[("a", "1")])));
    assert!(same(b"", b""));
    assert!(!same(&ab, b""));
}
