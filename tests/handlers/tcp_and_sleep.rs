//! `tcpSocket` (open, closed, named ports, a full accept queue) and `sleep`.

use super::*;

fn tcp_action(port: IntOrString, host: Option<&str>) -> TCPSocketAction {
    TCPSocketAction {
        host: host.map(str::to_owned),
        port,
    }
}

async fn run_tcp(action: &TCPSocketAction, c: &HookContext) -> HookOutcome {
    tokio::time::timeout(
        c.settings.timeout + Duration::from_secs(10),
        tcp::run(action, c),
    )
    .await
    .expect("tcpSocket handler outlived its deadline")
}

#[tokio::test]
async fn tcp_socket_open_v4_and_v6_closed_and_named() {
    for ip in [LOCALHOST, IpAddr::V6(Ipv6Addr::LOCALHOST)] {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let c = ctx(ip, Duration::from_secs(5));
        let o = run_tcp(&tcp_action(IntOrString::Int(port.into()), None), &c).await;
        assert_eq!(o.result, Ok(()), "{ip}");
        // The connection was made (and closed at once).
        let (mut s, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
            .await
            .unwrap()
            .unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(s.read(&mut buf).await.unwrap(), 0);
    }

    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let mut c = ctx(LOCALHOST, Duration::from_secs(5));
    c.target.ports = vec![("db".into(), listener.local_addr().unwrap().port())];
    let o = run_tcp(
        &tcp_action(IntOrString::String("db".into()), Some("127.0.0.1")),
        &c,
    )
    .await;
    assert_eq!(o.result, Ok(()));

    let port = closed_port(LOCALHOST).await;
    let o = run_tcp(&tcp_action(IntOrString::Int(port.into()), None), &c).await;
    assert_eq!(
        err(&o),
        format!(
            r#"TCP lifecycle hook ({port}) {PREFIX}dial tcp 127.0.0.1:{port}: connect: connection refused"#
        )
    );
    let o = run_tcp(&tcp_action(IntOrString::String("nope".into()), None), &c).await;
    assert_eq!(
        err(&o),
        format!(
            r#"TCP lifecycle hook (nope) {PREFIX}strconv.Atoi: parsing "nope": invalid syntax"#
        )
    );
}

#[tokio::test]
async fn tcp_socket_full_accept_queue_ends_within_deadline() {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind((LOCALHOST, 0).into()).unwrap();
    let listener = socket.listen(1).unwrap(); // never accepts
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        if let Ok(Ok(s)) =
            tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await
        {
            fillers.push(s);
        }
    }
    let c = ctx(LOCALHOST, Duration::from_secs(1));
    let started = Instant::now();
    let o = run_tcp(&tcp_action(IntOrString::Int(addr.port().into()), None), &c).await;
    assert!(started.elapsed() < Duration::from_secs(4));
    eprintln!(
        "full accept queue: {:?} after {:?}",
        o.result,
        started.elapsed()
    );
    if let Err(e) = &o.result {
        assert_eq!(
            e,
            &format!(
                "TCP lifecycle hook ({}) {PREFIX}dial tcp {addr}: i/o timeout",
                addr.port()
            )
        );
    }
    drop(listener);
}

// ---- sleep ---------------------------------------------------------------------------------

#[tokio::test]
async fn sleep_zero_one_and_cancelled() {
    let c = ctx(LOCALHOST, Duration::from_secs(5));
    let started = Instant::now();
    let o = sleep::run(&SleepAction { seconds: 0 }, &c).await;
    assert_eq!(o.result, Ok(()));
    assert!(started.elapsed() < Duration::from_millis(500));

    let started = Instant::now();
    let o = sleep::run(&SleepAction { seconds: 1 }, &c).await;
    assert_eq!(o.result, Ok(()));
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(started.elapsed() < Duration::from_secs(5));

    let cancel = c.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        cancel.cancel();
    });
    let started = Instant::now();
    let o = sleep::run(&SleepAction { seconds: 30 }, &c).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        err(&o),
        format!(
            "Sleep lifecycle hook (30) {PREFIX}container terminated before sleep hook finished"
        )
    );
}
