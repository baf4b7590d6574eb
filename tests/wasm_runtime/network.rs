//! Network namespaces and the network policy: which sockets a hook gets, and where.

use super::*;

/// With the network allowed and a network namespace given, a call runs on a thread of its
/// own inside that namespace (here our own, which needs no privilege): output, exit codes,
/// deadlines and cancellation work there as everywhere; a namespace that cannot be entered
/// is an `Error`, not a panic. Without the network, the namespace is not entered at all.
#[tokio::test]
async fn calls_with_a_network_namespace_run_on_their_own_thread() {
    let rt = runtime();
    let in_ns = |args: &[&str], netns: &str, network: HookNetwork| Invocation {
        netns: Some(netns.into()),
        ..with_network(inv(args), network)
    };
    let out = rt
        .run(
            &load(&rt, "hello.wat"),
            in_ns(&["hello.wasm"], "/proc/self/ns/net", HookNetwork::Allow),
        )
        .await;
    assert_eq!(out.status, ExecStatus::Success);
    assert_eq!(out.output.combined, b"out 1\nerr\nout 2\n");
    let out = rt
        .run(
            &load(&rt, "exit3.wat"),
            in_ns(&["exit3.wasm"], "/proc/self/ns/net", HookNetwork::Allow),
        )
        .await;
    assert_eq!(out.status, ExecStatus::Exited(3));

    let bogus = "/nonexistent/ns/net";
    let out = rt
        .run(
            &load(&rt, "noop.wat"),
            in_ns(&["noop.wasm"], bogus, HookNetwork::Allow),
        )
        .await;
    match &out.status {
        ExecStatus::Error(msg) => assert!(msg.contains("network namespace"), "{msg}"),
        other => panic!("entering {bogus}: {other:?}"),
    }
    // Network denied: the namespace is irrelevant and never entered.
    let out = rt
        .run(
            &load(&rt, "noop.wat"),
            in_ns(&["noop.wasm"], bogus, HookNetwork::Deny),
        )
        .await;
    assert_eq!(out.status, ExecStatus::Success);

    // Cancelled from the caller's side while it spins on the namespace's thread.
    let cancel = CancellationToken::new();
    let spin = Invocation {
        cancel: Some(cancel.clone()),
        ..in_ns(&["loop.wasm"], "/proc/self/ns/net", HookNetwork::Allow)
    };
    let module = load(&rt, "loop.wat");
    let call = tokio::spawn({
        let rt = rt.clone();
        async move { rt.run(&module, spin).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    cancel.cancel();
    let out = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("a cancelled call ends")
        .unwrap();
    assert_eq!(out.status, ExecStatus::Cancelled);
    still_serving(&rt).await;
}

/// The port `connect.wat` connects to, on 127.0.0.1. Tests using it take turns.
const CONNECT_PORT: u16 = 47613;

static CONNECT_PORT_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `call` under the network policy `network`.
fn with_network(mut call: Invocation, network: HookNetwork) -> Invocation {
    call.limits.network = network;
    call
}

fn connect_inv(network: HookNetwork, netns: Option<PathBuf>) -> Invocation {
    Invocation {
        netns,
        ..with_network(inv(&["connect.wasm"]), network)
    }
}

/// Binds 127.0.0.1:CONNECT_PORT in this process's network namespace without listening, so
/// that, while it is held, connections there are refused and nobody else can listen there.
fn refuse_connections_on_host() -> tokio::net::TcpSocket {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind((std::net::Ipv4Addr::LOCALHOST, CONNECT_PORT).into())
        .unwrap_or_else(|e| {
            panic!("127.0.0.1:{CONNECT_PORT} is in use on this host, the test needs it: {e}")
        });
    socket
}

/// Whether `listener` has a connection waiting (it is nonblocking).
fn accepted(listener: &std::net::TcpListener) -> bool {
    match listener.accept() {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(e) => panic!("accept: {e}"),
    }
}

/// A preview 2 component's TCP sockets work when the network is allowed: it connects to a
/// listener, gets its connection refused without one, and is denied with the network off.
#[tokio::test]
async fn p2_component_connects_with_network_allowed() {
    let _turn = CONNECT_PORT_TURN.lock().await;
    let rt = runtime();
    let module = load(&rt, "connect.wat");
    assert_eq!(module.kind(), ModuleKind::P2Command);

    let listener = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, CONNECT_PORT))
        .unwrap_or_else(|e| panic!("listening on 127.0.0.1:{CONNECT_PORT}: {e}"));
    listener.set_nonblocking(true).unwrap();
    let out = rt.run(&module, connect_inv(HookNetwork::Allow, None)).await;
    assert_eq!(out.status, ExecStatus::Success, "{out:?}");
    assert!(
        accepted(&listener),
        "the hook's connection reached the listener"
    );

    // The network denied: WASI refuses to create the socket (`create-tcp-socket` returns
    // `access-denied`: TCP is not allowed), and the command returns err.
    let out = rt.run(&module, connect_inv(HookNetwork::Deny, None)).await;
    assert_eq!(out.status, ExecStatus::Exited(1), "{out:?}");
    assert!(
        !accepted(&listener),
        "no connection with the network denied"
    );
    drop(listener);

    let _refusing = refuse_connections_on_host();
    let out = rt.run(&module, connect_inv(HookNetwork::Allow, None)).await;
    assert_eq!(out.status, ExecStatus::Exited(1), "{out:?}");
}

/// Root and `ip` (iproute2), or a skip; `WASMHOOK_REQUIRE_RUNC=1` (CI) makes it a failure.
fn netns_ready() -> bool {
    let problem = if !rustix::process::geteuid().is_root() {
        Some("not root".to_string())
    } else {
        common::ip_problem()
    };
    common::can_run(
        "network namespace test",
        &["WASMHOOK_REQUIRE_RUNC"],
        problem,
    )
}

/// A named network namespace (`ip netns add`) with `lo` up, deleted on drop.
struct NetNs {
    name: String,
}

impl NetNs {
    fn create() -> NetNs {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ns = NetNs {
            name: format!("wasmhook-test-{}-{n}", std::process::id()),
        };
        ns.ip(&["netns", "add", &ns.name]);
        ns.ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    fn ip(&self, args: &[&str]) {
        let out = std::process::Command::new("ip")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "delete", &self.name])
            .output();
    }
}

/// A thread in the namespace at `ns` listening on 127.0.0.1:`port` until it accepted one
/// connection (`true`) or 20 s passed (`false`). Returns once it listens.
fn listen_in(ns: &Path, port: u16) -> std::thread::JoinHandle<bool> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let path = ns.to_owned();
    let thread = std::thread::spawn(move || {
        let f = std::fs::File::open(&path).unwrap();
        rustix::thread::move_into_link_name_space(
            std::os::fd::AsFd::as_fd(&f),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .unwrap();
        let listener = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        ready_tx.send(()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if accepted(&listener) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    });
    if ready_rx.recv_timeout(Duration::from_secs(10)).is_err() {
        let why = thread.join().err().and_then(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        });
        panic!("the listener in {} did not start: {why:?}", ns.display());
    }
    thread
}

/// A hook's sockets live in the network namespace it is given: its 127.0.0.1 is the
/// namespace's loopback, where a listener (that the host's loopback does not have) accepts
/// its connection; without the namespace the same hook is refused on the host's loopback.
#[tokio::test]
async fn sockets_live_in_the_given_network_namespace() {
    if !netns_ready() {
        return;
    }
    let _turn = CONNECT_PORT_TURN.lock().await;
    let rt = runtime();
    let module = load(&rt, "connect.wat");
    let _refusing = refuse_connections_on_host();
    let ns = NetNs::create();
    let listener = listen_in(&ns.path(), CONNECT_PORT);

    let out = rt
        .run(&module, connect_inv(HookNetwork::Allow, Some(ns.path())))
        .await;
    assert_eq!(out.status, ExecStatus::Success, "{out:?}");
    assert!(
        listener.join().unwrap(),
        "the namespace's listener got the hook's connection"
    );

    let out = rt.run(&module, connect_inv(HookNetwork::Allow, None)).await;
    assert_eq!(
        out.status,
        ExecStatus::Exited(1),
        "the host's 127.0.0.1:{CONNECT_PORT} has no listener: {out:?}"
    );
}
