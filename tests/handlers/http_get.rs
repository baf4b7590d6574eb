//! `httpGet` as the kubelet sends it: the request line and headers, ports and hosts,
//! HTTPS without verification, IPv6, redirects, status codes.

use super::*;

#[tokio::test]
async fn http_get_plain_sends_the_kubelet_request() {
    let server = http_server(LOCALHOST, ok_handler()).await;
    let c = ctx(LOCALHOST, Duration::from_secs(5));
    let o = run_http(&get(server.port(), "/ready"), &c).await;
    assert_eq!(o.result, Ok(()));
    assert!(o.events.is_empty());
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    let req = &seen[0];
    assert_eq!(req.line, "GET /ready HTTP/1.1");
    assert_eq!(req.header("User-Agent"), ["kube-lifecycle/1.34"]);
    assert_eq!(req.header("Accept"), ["*/*"]);
    assert_eq!(req.header("Host"), [format!("127.0.0.1:{}", server.port())]);
    assert_eq!(req.header("Accept-Encoding"), ["gzip"]);
    // Go writes canonical header names.
    assert!(req.headers.iter().any(|(n, _)| n == "User-Agent"));
}

#[tokio::test]
async fn http_get_is_send_and_spawnable() {
    let server = http_server(LOCALHOST, ok_handler()).await;
    let c = ctx(LOCALHOST, Duration::from_secs(5));
    let action = get(server.port(), "/");
    let client = HttpClient::new();
    let o = tokio::spawn(async move { http::run(&client, &action, &c).await })
        .await
        .unwrap();
    assert_eq!(o.result, Ok(()));
}

#[tokio::test]
async fn http_get_path_is_a_url_reference() {
    let server = http_server(LOCALHOST, ok_handler()).await;
    let c = ctx(LOCALHOST, Duration::from_secs(5));
    for (path, want) in [
        ("healthz?x=1&y", "GET /healthz?x=1&y HTTP/1.1"),
        ("/a b#frag", "GET /a%20b HTTP/1.1"),
        ("", "GET / HTTP/1.1"),
    ] {
        let o = run_http(&get(server.port(), path), &c).await;
        assert_eq!(o.result, Ok(()), "{path}");
        assert_eq!(server.seen().last().unwrap().line, want, "{path}");
    }
}

#[tokio::test]
async fn http_get_named_port_and_default_host() {
    let server = http_server(LOCALHOST, ok_handler()).await;
    let mut c = ctx(LOCALHOST, Duration::from_secs(5));
    c.target.ports = vec![("admin".into(), server.port())];
    let action = HTTPGetAction {
        port: IntOrString::String("admin".into()),
        path: Some("/x".into()),
        ..Default::default()
    };
    assert_eq!(run_http(&action, &c).await.result, Ok(()));
    assert_eq!(server.seen().len(), 1);

    let missing = HTTPGetAction {
        port: IntOrString::String("nope".into()),
        path: Some("/x".into()),
        ..Default::default()
    };
    let o = run_http(&missing, &c).await;
    assert_eq!(
        err(&o),
        format!(r#"HTTP lifecycle hook (/x) {PREFIX}strconv.Atoi: parsing "nope": invalid syntax"#)
    );
    let o = run_http(&get(0, "/x"), &c).await;
    assert_eq!(
        err(&o),
        format!("HTTP lifecycle hook (/x) {PREFIX}invalid port number: 0")
    );
}

#[tokio::test]
async fn http_get_headers_override_in_order_with_host() {
    let server = http_server(LOCALHOST, ok_handler()).await;
    let c = ctx(LOCALHOST, Duration::from_secs(5));
    let action = headers(
        get(server.port(), "/"),
        &[
            ("x-custom", "one"),
            ("Host", "example.test"),
            ("X-Custom", "two"),
            ("User-Agent", "mine/1"),
            ("Accept", "text/plain"),
        ],
    );
    assert_eq!(run_http(&action, &c).await.result, Ok(()));
    let req = &server.seen()[0];
    assert_eq!(req.header("Host"), ["example.test"]);
    assert_eq!(req.header("X-Custom"), ["one", "two"]);
    assert_eq!(req.header("User-Agent"), ["mine/1"]);
    assert_eq!(req.header("Accept"), ["text/plain"]);

    // An empty Accept removes it.
    let action = headers(get(server.port(), "/"), &[("Accept", "")]);
    assert_eq!(run_http(&action, &c).await.result, Ok(()));
    let req = &server.seen()[1];
    assert!(req.header("Accept").is_empty(), "{req:?}");
    assert_eq!(req.header("User-Agent"), ["kube-lifecycle/1.34"]);

    // An invalid header name is a transport error, as in Go.
    let action = headers(get(server.port(), "/"), &[("bad name", "x")]);
    let o = run_http(&action, &c).await;
    assert_eq!(
        err(&o),
        format!(
            r#"HTTP lifecycle hook (/) {PREFIX}Get "http://127.0.0.1:{}/": net/http: invalid header field name "bad name""#,
            server.port()
        )
    );
}

#[tokio::test]
async fn http_get_https_without_verification() {
    let server = serve(LOCALHOST, ok_handler(), Some(tls_acceptor())).await;
    let c = ctx(LOCALHOST, Duration::from_secs(5));
    let action = HTTPGetAction {
        scheme: Some("HTTPS".into()),
        ..get(server.port(), "/secure")
    };
    let o = run_http(&action, &c).await;
    assert_eq!(o.result, Ok(()));
    assert!(o.events.is_empty());
    assert_eq!(server.seen()[0].line, "GET /secure HTTP/1.1");

    // By hostname (SNI sent) too.
    let action = HTTPGetAction {
        host: Some("localhost".into()),
        ..action
    };
    assert_eq!(run_http(&action, &c).await.result, Ok(()));
}

#[tokio::test]
async fn http_get_ipv6() {
    let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    let server = http_server(v6, ok_handler()).await;
    let c = ctx(v6, Duration::from_secs(5));
    assert_eq!(run_http(&get(server.port(), "/"), &c).await.result, Ok(()));
    assert_eq!(
        server.seen()[0].header("Host"),
        [format!("[::1]:{}", server.port())]
    );
    let port = closed_port(v6).await;
    let o = run_http(&get(port, "/"), &c).await;
    assert_eq!(
        err(&o),
        format!(
            r#"HTTP lifecycle hook (/) {PREFIX}Get "http://[::1]:{port}/": dial tcp [::1]:{port}: connect: connection refused"#
        )
    );
}

/// `/r/N` redirects to `/r/N-1`; `/r/0` answers 200.
fn chain_handler() -> Handler {
    Arc::new(|req: &Seen| {
        let n: u32 = req.path().trim_start_matches("/r/").parse().unwrap_or(0);
        if n == 0 {
            response(200, &[], "done")
        } else {
            response(302, &[("Location", &format!("/r/{}", n - 1))], "")
        }
    })
}

#[tokio::test]
async fn http_get_follows_same_host_redirects_up_to_go_limit() {
    let server = http_server(LOCALHOST, chain_handler()).await;
    let c = ctx(LOCALHOST, Duration::from_secs(10));
    // 9 redirects = 10 requests: Go's limit.
    let o = run_http(&get(server.port(), "/r/9"), &c).await;
    assert_eq!(o.result, Ok(()));
    let seen = server.seen();
    assert_eq!(seen.len(), 10);
    assert_eq!(seen[9].path(), "/r/0");
    assert_eq!(
        seen[1].header("Referer"),
        [format!("http://127.0.0.1:{}/r/9", server.port())]
    );
    assert_eq!(seen[1].header("User-Agent"), ["kube-lifecycle/1.34"]);

    // The 10th redirect is refused: `len(via) >= 10`. The URL is the Location as written.
    let o = run_http(&get(server.port(), "/r/10"), &c).await;
    assert_eq!(
        err(&o),
        format!(r#"HTTP lifecycle hook (/r/10) {PREFIX}Get "/r/0": stopped after 10 redirects"#)
    );
    assert_eq!(server.seen().len(), 20);
}

#[tokio::test]
async fn http_get_redirect_port_change_followed_cross_host_not() {
    let target = http_server(LOCALHOST, ok_handler()).await;
    let v6 = http_server(IpAddr::V6(Ipv6Addr::LOCALHOST), ok_handler()).await;
    let locations = [
        format!("http://127.0.0.1:{}/moved", target.port()),
        format!("http://localhost:{}/elsewhere", target.port()),
        format!("http://[::1]:{}/elsewhere", v6.port()),
    ];
    let locs = locations.clone();
    let redirector = http_server(
        LOCALHOST,
        Arc::new(move |req: &Seen| {
            let i: usize = req.path().trim_start_matches('/').parse().unwrap();
            response(301, &[("Location", &locs[i])], "")
        }),
    )
    .await;
    let c = ctx(LOCALHOST, Duration::from_secs(5));
    // Same hostname, other port: followed; the Host override does not survive an absolute
    // Location (Go).
    let action = headers(get(redirector.port(), "/0"), &[("Host", "h.test")]);
    assert_eq!(run_http(&action, &c).await.result, Ok(()));
    let seen = target.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path(), "/moved");
    assert_eq!(
        seen[0].header("Host"),
        [format!("127.0.0.1:{}", target.port())]
    );

    // Other hostnames: the 3xx is the final answer, which succeeds, even in strict mode.
    for (i, location) in locations.iter().enumerate().skip(1) {
        let o = run_http(
            &get(redirector.port(), &format!("/{i}")),
            &strict(c.clone()),
        )
        .await;
        assert_eq!(o.result, Ok(()), "{location}");
    }
    assert_eq!(target.seen().len(), 1);
    assert_eq!(v6.seen().len(), 0);
}

#[tokio::test]
async fn http_get_status_ignored_unless_strict() {
    let server = http_server(LOCALHOST, Arc::new(|_| response(500, &[], "boom"))).await;
    let c = ctx(LOCALHOST, Duration::from_secs(5));
    assert_eq!(run_http(&get(server.port(), "/"), &c).await.result, Ok(()));
    let o = run_http(&get(server.port(), "/"), &strict(c.clone())).await;
    assert_eq!(
        err(&o),
        format!("HTTP lifecycle hook (/) {PREFIX}HTTP probe failed with statuscode: 500")
    );
    let server = http_server(LOCALHOST, Arc::new(|_| response(204, &[], ""))).await;
    let o = run_http(&get(server.port(), "/"), &strict(c)).await;
    assert_eq!(o.result, Ok(()));
}

#[tokio::test]
async fn http_get_connection_refused_message() {
    let port = closed_port(LOCALHOST).await;
    let c = ctx(LOCALHOST, Duration::from_secs(5));
    let o = run_http(&get(port, "/"), &c).await;
    assert_eq!(
        err(&o),
        format!(
            r#"HTTP lifecycle hook (/) for Container "app" in Pod "web_default(uid-1)" failed - error: Get "http://127.0.0.1:{port}/": dial tcp 127.0.0.1:{port}: connect: connection refused"#
        )
    );
}
