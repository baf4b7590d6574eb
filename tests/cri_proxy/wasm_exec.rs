//! Wasm `ExecSync` calls the proxy answers itself: where the module is found, what the
//! kubelet gets back (exit code, stdout and stderr apart, deadline, trap), and how calls
//! behave under load.

use super::*;

/// `/hooks/inspect.wasm` shipped in the image: argv, env (the container's plus
/// `WASMHOOK_*`), files (the volumes, /data read-only), exit code, stdout and stderr apart.
pub(super) async fn wasm_hook_in_the_image(w: &World, _: &Containerd) {
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
pub(super) async fn wasm_hook_by_bare_name_on_path(w: &World, _: &Containerd) {
    let r = exec_ok(w, &["inspect.wasm", "bare"], 0).await;
    assert_eq!(r.exit_code, 0, "stderr: {}", r.stderr());
    assert_eq!(argv(&r.stdout()), ["inspect.wasm", "bare"]);
}

/// A relative path resolves against the container's working directory (`/tmp`).
pub(super) async fn wasm_hook_relative_to_working_dir(w: &World, _: &Containerd) {
    let r = exec_ok(w, &["../hooks/inspect.wasm"], 0).await;
    assert_eq!(r.exit_code, 0, "stderr: {}", r.stderr());
    assert_eq!(argv(&r.stdout()), ["../hooks/inspect.wasm"]);
}

/// A module shipped in a volume (`/data/vol-inspect.wasm`) runs too.
pub(super) async fn wasm_hook_in_a_volume(w: &World, _: &Containerd) {
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
pub(super) async fn wat_text_hook(w: &World, _: &Containerd) {
    let r = exec_ok(w, &["/hooks/hello.wat"], 0).await;
    assert_eq!(
        (r.exit_code, r.stdout(), r.stderr()),
        (0, "hello from a WAT hook\n".into(), String::new())
    );
}

/// `proc_exit(3)`: exit code 3, stdout and stderr each in their own field.
pub(super) async fn exit_code_stdout_and_stderr_apart(w: &World, _: &Containerd) {
    for timeout in [0, 5] {
        let r = exec_ok(w, &["/hooks/fail.wasm"], timeout).await;
        assert_eq!(
            (r.exit_code, r.stdout(), r.stderr()),
            (3, "about to fail\n".into(), "failing on purpose\n".into()),
            "timeout {timeout}"
        );
    }
}

/// A probe (`timeout: 1`) whose module never returns: `DeadlineExceeded` at its timeout, as
/// containerd answers a native probe; and the proxy keeps serving.
pub(super) async fn looping_probe_answers_deadline_exceeded(w: &World, _: &Containerd) {
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
pub(super) async fn trapping_hook_answers_an_exit_code(w: &World, _: &Containerd) {
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
pub(super) async fn absolute_symlink_stays_inside_the_container(w: &World, cd: &Containerd) {
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

/// A file with the wasm header that is no valid module is wasmhook's to refuse: gRPC
/// `Unknown` (the class of containerd's "OCI runtime exec failed"), a clear message.
pub(super) async fn invalid_module_answers_unknown(w: &World, _: &Containerd) {
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

/// Not a benchmark (BENCHMARKS.md has that): the medians of a wasm noop through the proxy
/// and of a native `/bin/true`, printed; the wasm one must at least be the faster.
pub(super) async fn noop_latency(w: &World, _: &Containerd) {
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
pub(super) async fn output_is_capped_to_what_the_kubelet_accepts(w: &World, _: &Containerd) {
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
pub(super) async fn concurrent_calls(w: &World, _: &Containerd) {
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
