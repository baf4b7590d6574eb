//! Whole pods on runc through the CLI: hooks and probes reach the pod's network and
//! volumes, not the node's.

use super::*;

/// The output of the one successful `hook` HookResult of `container`.
fn hook_output(records: &[serde_json::Value], container: &str, hook: &str) -> String {
    let r = records
        .iter()
        .find(|r| r["kind"] == "HookResult" && r["container"] == container && r["hook"] == hook)
        .unwrap_or_else(|| panic!("no {hook} result of {container} in {records:#?}"));
    assert_eq!(r["success"], true, "{r:#}");
    r["output"].as_str().unwrap().to_string()
}

/// A node address that is not loopback (the first global IPv4 address), if the node has one.
fn node_address() -> Option<std::net::IpAddr> {
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let cidr = text
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)?;
    cidr.split('/').next()?.parse().ok()
}

/// Under `wasmhook.dev/hook-network: pod`, a wasm hook's sockets live in the pod's network
/// namespace: it reaches the pod's own server on the pod's loopback, not a listener on the
/// node's loopback (another namespace), and the policy refuses the node's other addresses.
#[test]
fn hooks_reach_the_pods_port_and_not_the_nodes() {
    if !runc_ready() {
        return;
    }
    let on_node_loopback = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let node_port = on_node_loopback.local_addr().unwrap().port();
    let mut probes = vec![
        "tcp:127.0.0.1:8080".to_string(),
        format!("tcp:127.0.0.1:{node_port}"),
    ];
    let mut expected = vec![
        "tcp 127.0.0.1:8080 ok".to_string(),
        format!("tcp 127.0.0.1:{node_port} err connection-refused"),
    ];
    let on_node_address = node_address().map(|ip| std::net::TcpListener::bind((ip, 0)).unwrap());
    if let Some(l) = &on_node_address {
        let addr = l.local_addr().unwrap();
        probes.push(format!("tcp:{addr}"));
        expected.push(format!("tcp {addr} err access-denied"));
    }
    let netprobe = root().join("examples/hooks/bin/netprobe.component.wasm");
    let dir = tempfile::tempdir().unwrap();
    let pod = dir.path().join("pod.yaml");
    std::fs::write(
        &pod,
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: netprobe\n  annotations:\n    wasmhook.dev/hook-network: pod\nspec:\n  terminationGracePeriodSeconds: 5\n  containers:\n  - name: server\n    image: busybox\n    command: [sh, -c, \"trap 'exit 0' TERM; httpd -f -p 8080 -h /tmp & wait\"]\n    lifecycle:\n      preStop:\n        exec:\n          command: {}\n",
            serde_json::to_string(
                &std::iter::once(netprobe.to_string_lossy().into_owned())
                    .chain(probes)
                    .collect::<Vec<_>>()
            )
            .unwrap()
        ),
    )
    .unwrap();
    let (records, _) = run_pod_json(&pod, "2s");
    let output = hook_output(&records, "server", "preStop");
    let lines: Vec<&str> = output.lines().take(expected.len()).collect();
    assert_eq!(lines, expected, "{output}");
}

/// The runc variant of the README's HTTP drain example: the preStop component drains the
/// busybox app through the pod's loopback before SIGTERM.
#[test]
fn the_http_drain_example_drains_through_the_pods_loopback() {
    if !runc_ready() {
        return;
    }
    let (records, _) = run_pod_json(&root().join("examples/pods/runc-http-drain.yaml"), "2s");
    let output = hook_output(&records, "app", "preStop");
    assert!(
        output.contains("POST http://localhost:8080/cgi-bin/drain: 200 after"),
        "{output}"
    );
    assert!(
        records.iter().any(|r| r["kind"] == "Log"
            && r["line"] == "SIGTERM: exiting cleanly (drained: /www/drained)"),
        "{records:#?}"
    );
}

/// Probes in a real container: a tcpSocket startup probe and an httpGet readiness probe
/// reach the pod's port from inside its network namespace (at the pod IP), and a wasm
/// liveness probe sees the container's volume.
#[test]
fn probes_reach_the_pod_and_its_volumes() {
    if !runc_ready() {
        return;
    }
    let healthy = root().join("examples/hooks/bin/healthy.wat");
    let dir = tempfile::tempdir().unwrap();
    let pod = dir.path().join("pod.yaml");
    std::fs::write(
        &pod,
        format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: probed}}
spec:
  terminationGracePeriodSeconds: 5
  volumes: [{{name: www, emptyDir: {{}}}}]
  containers:
  - name: web
    image: busybox
    command: [sh, -c, "touch /www/healthy; (sleep 1; echo ok > /www/ready.txt) & trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait"]
    volumeMounts: [{{name: www, mountPath: /www}}]
    startupProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1, failureThreshold: 10}}
    readinessProbe: {{httpGet: {{port: 8080, path: /ready.txt}}, periodSeconds: 1}}
    livenessProbe: {{exec: {{command: ["{healthy}"]}}, periodSeconds: 1}}
"#,
            healthy = healthy.display()
        ),
    )
    .unwrap();
    let (records, stdout) = run_pod_json(&pod, "5s");
    assert!(
        records
            .iter()
            .any(|r| r["kind"] == "Readiness" && r["container"] == "web" && r["podReady"] == true),
        "never ready\n{stdout}"
    );
    assert!(
        !records
            .iter()
            .any(|r| r["reason"] == "Killing" && r["message"] != "Stopping container web"),
        "killed by a probe\n{stdout}"
    );
    for r in records.iter().filter(|r| r["reason"] == "Unhealthy") {
        let m = r["message"].as_str().unwrap();
        assert!(
            m.starts_with("Startup probe failed: dial tcp ")
                || m.starts_with("Readiness probe failed: HTTP probe failed with statuscode: 404"),
            "{m}\n{stdout}"
        );
    }
}

/// `command[0]` is looked up in the container first: a module on a volume of the container
/// (not on the host at that path) runs as wasm, read through the container's root; a shell
/// command runs natively through `runc exec`, inside the container's namespaces (its
/// hostname is the pod's), and its report says so.
#[test]
fn modules_in_the_container_and_native_commands() {
    if !runc_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let hooks = dir.path().join("hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    std::fs::copy(
        root().join("examples/hooks/bin/hello.wat"),
        hooks.join("hello.wat"),
    )
    .unwrap();
    let pod = dir.path().join("pod.yaml");
    std::fs::write(
        &pod,
        format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: mixed-hooks}}
spec:
  terminationGracePeriodSeconds: 5
  volumes: [{{name: hooks, hostPath: {{path: "{hooks}"}}}}]
  containers:
  - name: app
    image: busybox
    command: [sh, -c, "trap 'exit 0' TERM; while true; do sleep 0.1; done"]
    volumeMounts: [{{name: hooks, mountPath: /opt/wasmhook-test-hooks, readOnly: true}}]
    readinessProbe:
      exec: {{command: [sh, -c, "test -d /opt/wasmhook-test-hooks"]}}
      periodSeconds: 1
    lifecycle:
      postStart:
        exec: {{command: [/opt/wasmhook-test-hooks/hello.wat]}}
      preStop:
        exec: {{command: [/bin/sh, -c, "echo native; hostname"]}}
"#,
            hooks = hooks.display()
        ),
    )
    .unwrap();
    assert!(!Path::new("/opt/wasmhook-test-hooks").exists());
    let (records, stdout) = run_pod_json(&pod, "3s");
    let report = |hook: &str| {
        records
            .iter()
            .find(|r| r["kind"] == "HookResult" && r["hook"] == hook)
            .unwrap_or_else(|| panic!("no {hook} report\n{stdout}"))
            .clone()
    };
    let post = report("postStart");
    assert_eq!(post["native"], false, "{stdout}");
    assert_eq!(
        hook_output(&records, "app", "postStart"),
        "hello from a WAT hook\n"
    );
    let pre = report("preStop");
    assert_eq!(pre["native"], true, "{stdout}");
    assert_eq!(
        hook_output(&records, "app", "preStop"),
        "native\nmixed-hooks\n"
    );
    assert!(
        records
            .iter()
            .any(|r| r["kind"] == "Readiness" && r["ready"] == true),
        "the native readiness probe never passed\n{stdout}"
    );
}
