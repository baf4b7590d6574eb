//! Hook network policies (`wasmhook.dev/hook-network`, `--hook-network`) with a real
//! component, `examples/hooks/bin/netprobe.component.wasm`, against real listeners and HTTP
//! servers on 127.0.0.1, 127.0.0.2 and ::1: through the runtime API (each policy permits
//! exactly what it says, names, redirects, deadlines) and through the binary (`hook run`,
//! validation, the `http-drain` example pod). The runc backend's side is in
//! `tests/backend_runc.rs`.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wasmhook::events::PodRef;
use wasmhook::hook::{HookKind, HookNetwork};
use wasmhook::wasm::{
    Allocator, ExecOutcome, ExecStatus, HookIdentity, HookModule, HookRuntime, Invocation, Limits,
    RuntimeConfig,
};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn netprobe_path() -> PathBuf {
    root().join("examples/hooks/bin/netprobe.component.wasm")
}

fn runtime() -> HookRuntime {
    HookRuntime::new(RuntimeConfig {
        allocator: Allocator::OnDemand,
        cache_dir: None,
        allow_precompiled: false,
        default_limits: Limits::default(),
    })
    .expect("runtime")
}

fn netprobe(rt: &HookRuntime) -> HookModule {
    rt.load_file(&netprobe_path()).expect("netprobe loads")
}

fn invocation(policy: &str, timeout: Duration, probes: &[String]) -> Invocation {
    let mut args = vec!["netprobe.component.wasm".to_string()];
    args.extend(probes.iter().cloned());
    Invocation {
        args,
        limits: Limits {
            timeout,
            network: policy.parse().expect("policy parses"),
            ..Limits::default()
        },
        identity: Some(HookIdentity {
            pod: PodRef {
                name: "web".into(),
                namespace: "default".into(),
                uid: "uid-1".into(),
            },
            container: "app".into(),
            kind: HookKind::PreStop,
        }),
        ..Invocation::default()
    }
}

/// Run netprobe under `policy`; its output lines, and the outcome.
async fn probe(rt: &HookRuntime, policy: &str, probes: &[String]) -> (Vec<String>, ExecOutcome) {
    let out = rt
        .run(
            &netprobe(rt),
            invocation(policy, Duration::from_secs(20), probes),
        )
        .await;
    assert_eq!(out.status, ExecStatus::Success, "{out:?}");
    let text = String::from_utf8(out.output.stdout.clone()).unwrap();
    (text.lines().map(str::to_string).collect(), out)
}

/// Listening sockets that accept connections (the kernel completes the handshake; nobody
/// needs to call accept) on the addresses the policies talk about.
struct Targets {
    a: TcpListener,
    b: TcpListener,
    v6: TcpListener,
    other: TcpListener,
}

impl Targets {
    fn new() -> Targets {
        let bind = |addr: &str| TcpListener::bind(addr).unwrap_or_else(|e| panic!("{addr}: {e}"));
        Targets {
            a: bind("127.0.0.1:0"),
            b: bind("127.0.0.1:0"),
            v6: bind("[::1]:0"),
            // Another loopback address: the host's, but not "the pod's" on the host network.
            other: bind("127.0.0.2:0"),
        }
    }

    fn addr(l: &TcpListener) -> SocketAddr {
        l.local_addr().unwrap()
    }
}

fn tcp(addr: SocketAddr) -> String {
    format!("tcp:{addr}")
}

/// `tcp ADDR ok` or `tcp ADDR err CODE`, as netprobe prints them.
fn line(addr: SocketAddr, result: &str) -> String {
    format!("tcp {addr} {result}")
}

#[tokio::test]
async fn each_policy_permits_exactly_what_it_says() {
    let rt = runtime();
    let t = Targets::new();
    let (a, b, v6, other) = (
        Targets::addr(&t.a),
        Targets::addr(&t.b),
        Targets::addr(&t.v6),
        Targets::addr(&t.other),
    );
    let probes = [tcp(a), tcp(b), tcp(v6), tcp(other)];
    const OK: &str = "ok";
    const DENIED: &str = "err access-denied";
    let cases: Vec<(String, [&str; 4])> = vec![
        ("deny".into(), [DENIED; 4]),
        // On the host network the pod is exactly 127.0.0.1 and ::1.
        ("pod".into(), [OK, OK, OK, DENIED]),
        ("allow".into(), [OK; 4]),
        (
            format!("127.0.0.1:{},[::1]:{}", a.port(), v6.port()),
            [OK, DENIED, OK, DENIED],
        ),
        (
            format!("127.0.0.0/8:{}", other.port()),
            [DENIED, DENIED, DENIED, OK],
        ),
        ("[::1]:*,127.0.0.2".to_string(), [DENIED, DENIED, OK, OK]),
        (format!("pod,127.0.0.2:{}", other.port()), [OK, OK, OK, OK]),
    ];
    for (policy, expected) in cases {
        let (lines, out) = probe(&rt, &policy, &probes).await;
        let want: Vec<String> = [a, b, v6, other]
            .iter()
            .zip(expected)
            .map(|(addr, r)| line(*addr, r))
            .collect();
        assert_eq!(lines, want, "policy {policy}");
        // Every refusal is reported, naming the address and port.
        let refused: Vec<String> = [a, b, v6, other]
            .iter()
            .zip(expected)
            .filter(|(_, r)| *r == DENIED)
            .map(|(addr, _)| format!("tcp connect to {addr}"))
            .collect();
        assert_eq!(out.network_refused, refused, "policy {policy}");
        let report = String::from_utf8(out.output_with_marker()).unwrap();
        for r in &refused {
            assert!(
                report.contains(&format!("[wasmhook: network policy refused {r}]")),
                "{report}"
            );
        }
    }
}

#[tokio::test]
async fn binds_are_checked_like_connects() {
    let rt = runtime();
    let probes = [
        "bind:127.0.0.1:0".to_string(),
        "bind:127.0.0.2:0".to_string(),
        "bind:0.0.0.0:0".to_string(),
    ];
    let (lines, _) = probe(&rt, "pod", &probes).await;
    assert_eq!(
        lines,
        [
            "bind 127.0.0.1:0 ok",
            "bind 127.0.0.2:0 err access-denied",
            // Listening on every interface would reach beyond the pod.
            "bind 0.0.0.0:0 err access-denied",
        ]
    );
}

#[tokio::test]
async fn names_resolve_only_when_the_policy_names_them() {
    let rt = runtime();
    let t = Targets::new();
    let (a, b) = (Targets::addr(&t.a), Targets::addr(&t.b));
    let lookups = [
        "lookup:localhost".to_string(),
        "lookup:wasmhook-test.invalid".to_string(),
        "lookup:127.0.0.1".to_string(),
    ];

    // `pod`: localhost is the loopback (RFC 6761); nothing else is looked up, so no DNS
    // query leaves the hook. IP literals are not lookups.
    let (lines, out) = probe(&rt, "pod", &lookups).await;
    assert!(lines[0].starts_with("lookup localhost ok "), "{lines:?}");
    assert!(lines[0].contains("127.0.0.1"), "{lines:?}");
    assert_eq!(lines[1], "lookup wasmhook-test.invalid err access-denied");
    assert_eq!(lines[2], "lookup 127.0.0.1 ok 127.0.0.1");
    assert_eq!(
        out.network_refused,
        ["name lookup of wasmhook-test.invalid"]
    );

    // `deny`: no lookup at all.
    let (lines, _) = probe(&rt, "deny", &lookups[..1]).await;
    assert_eq!(lines, ["lookup localhost err access-denied"]);

    // A name entry permits its name, and the addresses it resolves to on its port only.
    let policy = format!("localhost:{}", a.port());
    let probes = [lookups[0].clone(), lookups[1].clone(), tcp(a), tcp(b)];
    let (lines, _) = probe(&rt, &policy, &probes).await;
    assert!(lines[0].starts_with("lookup localhost ok "), "{lines:?}");
    assert_eq!(lines[1], "lookup wasmhook-test.invalid err access-denied");
    assert_eq!(lines[2], line(a, "ok"));
    assert_eq!(lines[3], line(b, "err access-denied"));
}

/// A minimal HTTP/1.1 server on `addr`: every request gets `response` (raw bytes), then the
/// connection closes. Runs until the test's runtime ends.
async fn serve(addr: &str, response: String) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let local = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let response = response.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = conn.write_all(response.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    local
}

fn ok_response() -> String {
    "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok".into()
}

fn redirect_to(location: &str) -> String {
    format!("HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
}

#[tokio::test]
async fn http_requests_are_checked_on_every_connection() {
    let rt = runtime();
    let target = serve("127.0.0.1:0", ok_response()).await;
    let elsewhere = serve("127.0.0.2:0", ok_response()).await;
    let v6 = serve("[::1]:0", ok_response()).await;
    let to_target = serve("127.0.0.1:0", redirect_to(&format!("http://{target}/"))).await;
    let to_elsewhere = serve("127.0.0.1:0", redirect_to(&format!("http://{elsewhere}/"))).await;

    // `pod`: the pod's addresses, by address and by `localhost`, IPv4 and IPv6; a redirect
    // off the pod is a new connection, refused.
    let probes = [
        format!("http:http://{target}/"),
        format!("http:http://localhost:{}/", target.port()),
        format!("http:http://{v6}/"),
        format!("http:http://{elsewhere}/"),
        format!("follow:http://{to_elsewhere}/"),
        format!("http:http://wasmhook-test.invalid:{}/", target.port()),
    ];
    let (lines, out) = probe(&rt, "pod", &probes).await;
    assert_eq!(
        lines,
        [
            format!("http http://{target}/ 200"),
            format!("http http://localhost:{}/ 200", target.port()),
            format!("http http://{v6}/ 200"),
            format!("http http://{elsewhere}/ err destination-ip-prohibited"),
            format!("http http://{to_elsewhere}/ 302"),
            format!("http http://{elsewhere}/ err destination-ip-prohibited"),
            format!(
                "http http://wasmhook-test.invalid:{}/ err http-request-denied",
                target.port()
            ),
        ]
    );
    for refused in [
        format!("tcp connect to {elsewhere}"),
        "name lookup of wasmhook-test.invalid".to_string(),
    ] {
        assert!(
            out.network_refused.contains(&refused),
            "{refused}: {:?}",
            out.network_refused
        );
    }

    // A list naming only the first hop: following its redirect to a permitted address works,
    // to any other address does not, whatever the guest's client does.
    let policy = format!("127.0.0.1:{},127.0.0.1:{}", to_target.port(), target.port());
    let probes = [
        format!("follow:http://{to_target}/"),
        format!("follow:http://{to_elsewhere}/"),
    ];
    let (lines, _) = probe(&rt, &policy, &probes).await;
    assert_eq!(
        lines,
        [
            format!("http http://{to_target}/ 302"),
            format!("http http://{target}/ 200"),
            format!("http http://{to_elsewhere}/ err destination-ip-prohibited"),
        ]
    );
}

#[tokio::test]
async fn the_hook_deadline_bounds_hung_connects_and_silent_servers() {
    let rt = runtime();
    // A server that accepts and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let _held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = silent.accept().await {
            conns.push(c);
        }
    });
    // A listener whose accept queue (backlog 0) is full: the kernel drops further SYNs, so
    // a connect hangs until its caller gives up.
    let full = tokio::net::TcpSocket::new_v4().unwrap();
    full.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let full = full.listen(0).unwrap();
    let full_addr = full.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        match tokio::time::timeout(
            Duration::from_millis(300),
            tokio::net::TcpStream::connect(full_addr),
        )
        .await
        {
            Ok(Ok(s)) => fillers.push(s),
            Ok(Err(e)) => panic!("filling the accept queue: {e}"),
            Err(_) => break, // the queue is full: connects hang now
        }
    }
    assert!(fillers.len() < 8, "the accept queue never filled");

    let timeout = Duration::from_secs(1);
    for probe in [format!("http:http://{silent_addr}/"), tcp(full_addr)] {
        let started = Instant::now();
        let out = rt
            .run(
                &netprobe(&rt),
                invocation("pod", timeout, std::slice::from_ref(&probe)),
            )
            .await;
        assert_eq!(
            out.status,
            ExecStatus::TimedOut(timeout),
            "{probe}: {out:?}"
        );
        // Slack for a loaded 2-core machine; the point is "bounded", not "exact".
        assert!(started.elapsed() < Duration::from_secs(10), "{probe}");
    }
}

#[test]
fn policies_parse_as_documented() {
    assert_eq!("pod".parse::<HookNetwork>(), Ok(HookNetwork::Pod));
    assert!("127.0.0.1:8080,[::1]:8080,localhost:9901,10.0.0.0/8:*"
        .parse::<HookNetwork>()
        .is_ok());
}

// --- through the binary ------------------------------------------------------------------------

fn wasmhook() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wasmhook"));
    c.arg("--no-cache");
    c
}

#[test]
fn hook_run_reports_refusals_in_text_and_json() {
    let t = Targets::new();
    let (a, b) = (Targets::addr(&t.a), Targets::addr(&t.b));
    let policy = format!("127.0.0.1:{}", a.port());
    let run = |format: &str| {
        wasmhook()
            .args(["hook", "run", "--hook-network", &policy, "--output", format])
            .arg(netprobe_path())
            .args([tcp(a), tcp(b)])
            .output()
            .unwrap()
    };
    let out = run("json");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json["networkRefused"],
        serde_json::json!([format!("tcp connect to {b}")])
    );
    assert_eq!(
        json["output"],
        format!("tcp {a} ok\ntcp {b} err access-denied\n")
    );
    let out = run("text");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "[wasmhook: network policy refused tcp connect to {b}]"
        )),
        "{stdout}"
    );
}

#[test]
fn malformed_policies_are_refused_with_their_field_path() {
    let out = wasmhook()
        .args(["hook", "run", "--hook-network", "10.0.0.1/8:80"])
        .arg(netprobe_path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("has host bits set"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let pod = dir.path().join("pod.yaml");
    std::fs::write(
        &pod,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  annotations:\n    wasmhook.dev/hook-network.app: \"127.0.0.1:8080,[::1]8080\"\n    wasmhook.dev/hook-network: alow\nspec:\n  containers: [{name: app, image: i, command: [sleep, \"1\"]}]\n",
    )
    .unwrap();
    let out = wasmhook().arg("validate").arg(&pod).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    // `validate` reports on stdout, one line per problem, each naming the file.
    let stderr = String::from_utf8_lossy(&out.stdout);
    assert!(
        stderr.contains(
            r#"metadata.annotations[wasmhook.dev/hook-network.app]: Invalid value: "127.0.0.1:8080,[::1]8080": entry "[::1]8080": unexpected "8080" after ']' (expected ':PORT')"#
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains(r#"metadata.annotations[wasmhook.dev/hook-network]: Unsupported value: "alow": supported values: "deny", "pod", "allow""#),
        "{stderr}"
    );
    assert!(stderr.contains("pod.yaml"), "{stderr}");
}

/// The README's example: a preStop hook drains the app over HTTP under the `pod` policy, on
/// the default (process) backend. Needs `busybox` for the app's web server (CI installs it);
/// with `WASMHOOK_REQUIRE_RUNC` set (CI) its absence fails the test.
#[test]
fn the_http_drain_example_drains_before_sigterm() {
    let busybox = Path::new("/bin/busybox").exists() || Path::new("/usr/bin/busybox").exists();
    let problem = (!busybox).then(|| "busybox is missing (apt-get install busybox-static)".into());
    if !common::can_run("HTTP drain example", &["WASMHOOK_REQUIRE_RUNC"], problem) {
        return;
    }
    let out = wasmhook()
        .args(["run", "--stop-after", "2s", "--output", "json", "--logs"])
        .arg(root().join("examples/pods/http-drain.yaml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let position = |f: &dyn Fn(&serde_json::Value) -> bool| {
        records
            .iter()
            .position(f)
            .unwrap_or_else(|| panic!("not found in:\n{stdout}"))
    };
    let hook =
        position(&|r| r["kind"] == "HookResult" && r["hook"] == "preStop" && r["success"] == true);
    let hook_output = records[hook]["output"].as_str().unwrap_or_default();
    assert!(hook_output.contains(": 200 after"), "{stdout}");
    let drained_then_term = position(&|r| {
        r["kind"] == "Log"
            && r["line"]
                .as_str()
                .is_some_and(|l| l.starts_with("SIGTERM: exiting cleanly (drained: www/drained)"))
    });
    assert!(hook < drained_then_term, "{stdout}");
    assert_eq!(records.last().unwrap()["phase"], "Succeeded", "{stdout}");
}
