//! `httpGet` against servers that fail: never answering, bodies too large to read, HTTPS
//! that falls back to HTTP or answers garbage.

use super::*;

#[tokio::test]
async fn http_get_server_that_never_answers_hits_the_deadline() {
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s); // accept, read nothing, answer nothing
        }
    });
    let c = ctx(LOCALHOST, Duration::from_millis(500));
    let started = Instant::now();
    let o = run_http(&get(port, "/slow"), &c).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        err(&o),
        format!(
            r#"HTTP lifecycle hook (/slow) {PREFIX}Get "http://127.0.0.1:{port}/slow": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"#
        )
    );

    // Cancellation stops it too.
    let c = ctx(LOCALHOST, Duration::from_secs(60));
    let cancel = c.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        cancel.cancel();
    });
    let started = Instant::now();
    let o = run_http(&get(port, "/slow"), &c).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(err(&o).ends_with(&format!(
        r#"Get "http://127.0.0.1:{port}/slow": context canceled"#
    )));
}

/// A server that advertises (or streams) a huge body and keeps writing until the client goes.
async fn huge_body_server(chunked: bool) -> (u16, Arc<Mutex<u64>>) {
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let written = Arc::new(Mutex::new(0u64));
    let w = written.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let w = w.clone();
            tokio::spawn(async move {
                read_head(&mut s, Vec::new()).await;
                let head = if chunked {
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_owned()
                } else {
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", 50u64 << 20)
                };
                if s.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let data = vec![b'x'; 64 << 10];
                let mut chunk = format!("{:x}\r\n", data.len()).into_bytes();
                chunk.extend_from_slice(&data);
                chunk.extend_from_slice(b"\r\n");
                let piece = if chunked { chunk } else { data };
                for _ in 0..(50 << 20) / (64 << 10) {
                    if s.write_all(&piece).await.is_err() {
                        return;
                    }
                    *w.lock().unwrap() += piece.len() as u64;
                }
            });
        }
    });
    (port, written)
}

#[tokio::test]
async fn http_get_large_body_is_not_read() {
    for chunked in [false, true] {
        let (port, written) = huge_body_server(chunked).await;
        let c = ctx(LOCALHOST, Duration::from_secs(20));
        let started = Instant::now();
        let o = run_http(&get(port, "/big"), &c).await;
        assert_eq!(o.result, Ok(()), "chunked={chunked}");
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let written = *written.lock().unwrap();
        assert!(
            written < 40 << 20,
            "server wrote {written} bytes (chunked={chunked})"
        );
    }
}

#[tokio::test]
async fn http_get_https_to_http_fallback_drops_authorization() {
    let server = http_server(LOCALHOST, ok_handler()).await;
    let c = ctx(LOCALHOST, Duration::from_secs(5));
    let action = headers(
        HTTPGetAction {
            scheme: Some("HTTPS".into()),
            ..get(server.port(), "/hook")
        },
        &[("Authorization", "Bearer secret"), ("X-Keep", "yes")],
    );
    let o = run_http(&action, &c).await;
    assert_eq!(o.result, Ok(()));
    assert_eq!(*server.tls_hellos.lock().unwrap(), 1);
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].header("Authorization").is_empty(), "{:?}", seen[0]);
    assert_eq!(seen[0].header("X-Keep"), ["yes"]);
    assert_eq!(o.events.len(), 1);
    let ev = &o.events[0];
    assert_eq!(ev.kind, EventType::Warning);
    assert_eq!(ev.reason, reason::LIFECYCLE_HTTP_FALLBACK);
    assert_eq!(ev.container, None);
    assert_eq!(ev.pod, "web");
    assert_eq!(
        ev.message,
        format!(
            "request to HTTPS lifecycle hook 127.0.0.1:{} got HTTP response, retry with HTTP succeeded",
            server.port()
        )
    );
}

#[tokio::test]
async fn http_get_failed_fallback_reports_the_https_error() {
    // Answers every connection with a plain-HTTP 400 to the ClientHello, and drops plain
    // HTTP requests without answering.
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut first = [0u8; 1];
            if s.read_exact(&mut first).await.is_ok() && first[0] == 0x16 {
                let _ = s.write_all(&response(400, &[], "")).await;
            }
        }
    });
    let c = ctx(LOCALHOST, Duration::from_secs(5));
    let action = HTTPGetAction {
        scheme: Some("HTTPS".into()),
        ..get(port, "/")
    };
    let o = run_http(&action, &c).await;
    assert_eq!(
        err(&o),
        format!(
            r#"HTTP lifecycle hook (/) {PREFIX}Get "https://127.0.0.1:{port}/": http: server gave HTTP response to HTTPS client"#
        )
    );
    assert!(o.events.is_empty());
}

#[tokio::test]
async fn http_get_https_to_garbage_is_not_retried() {
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let conns = Arc::new(Mutex::new(0));
    let n = conns.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            *n.lock().unwrap() += 1;
            let _ = s.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").await;
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
        }
    });
    let c = ctx(LOCALHOST, Duration::from_secs(5));
    let action = HTTPGetAction {
        scheme: Some("HTTPS".into()),
        ..get(port, "/")
    };
    let o = run_http(&action, &c).await;
    assert_eq!(
        err(&o),
        format!(
            r#"HTTP lifecycle hook (/) {PREFIX}Get "https://127.0.0.1:{port}/": tls: first record does not look like a TLS handshake"#
        )
    );
    assert_eq!(*conns.lock().unwrap(), 1);
}

// ---- tcpSocket -----------------------------------------------------------------------------
