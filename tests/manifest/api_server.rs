//! Manifests the API server rejects get its exact messages, field paths included.

use super::*;

#[test]
fn invalid_manifests_give_the_api_servers_messages() {
    let hooks = fixtures().join("hooks");
    let missing_tried = format!("{:?}", hooks.join("missing.wasm").display().to_string());
    let cases: Vec<(&str, String, Vec<String>)> = vec![
        (
            "no handler",
            pod("    lifecycle: {postStart: {}}\n", ""),
            vec![r#"pod "web": spec.containers[0].lifecycle.postStart: Required value: must specify a handler type"#.into()],
        ),
        (
            "more than one handler, each extra reported",
            pod("    lifecycle: {preStop: {exec: {command: [hooks/ready.wat]}, httpGet: {port: 80}, sleep: {seconds: 1}}}\n", ""),
            vec![
                r#"pod "web": spec.containers[0].lifecycle.preStop.httpGet: Forbidden: may not specify more than 1 handler type"#.into(),
                r#"pod "web": spec.containers[0].lifecycle.preStop.sleep: Forbidden: may not specify more than 1 handler type"#.into(),
            ],
        ),
        (
            "empty exec command",
            pod("    lifecycle: {postStart: {exec: {command: []}}}\n", ""),
            vec![r#"pod "web": spec.containers[0].lifecycle.postStart.exec.command: Required value"#.into()],
        ),
        (
            "port out of range",
            pod("    lifecycle: {postStart: {httpGet: {port: 70000}}}\n", ""),
            vec![r#"pod "web": spec.containers[0].lifecycle.postStart.httpGet.port: Invalid value: 70000: must be between 1 and 65535, inclusive"#.into()],
        ),
        (
            "tcpSocket port zero",
            pod("    lifecycle: {preStop: {tcpSocket: {port: 0}}}\n", ""),
            vec![r#"pod "web": spec.containers[0].lifecycle.preStop.tcpSocket.port: Invalid value: 0: must be between 1 and 65535, inclusive"#.into()],
        ),
        (
            "port name: one message per broken rule",
            pod("    lifecycle: {postStart: {httpGet: {port: Very--Long_Port-Name-}}}\n", ""),
            [
                "must be no more than 15 characters",
                "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                "must not contain consecutive hyphens",
                "must not begin or end with a hyphen",
            ]
            .iter()
            .map(|m| format!(r#"pod "web": spec.containers[0].lifecycle.postStart.httpGet.port: Invalid value: "Very--Long_Port-Name-": {m}"#))
            .collect(),
        ),
        (
            "numeric string port has no letter",
            pod("    lifecycle: {postStart: {httpGet: {port: \"8080\"}}}\n", ""),
            vec![r#"pod "web": spec.containers[0].lifecycle.postStart.httpGet.port: Invalid value: "8080": must contain at least one letter (a-z)"#.into()],
        ),
        (
            "named port missing from the container's ports (wasmhook)",
            pod("    ports: [{containerPort: 8080, name: http}]\n    lifecycle: {postStart: {httpGet: {port: metrics}}}\n", ""),
            vec![r#"pod "web": spec.containers[0].lifecycle.postStart.httpGet.port: Not found: "metrics": wasmhook resolves named ports from spec.containers[0].ports, which has no port of this name"#.into()],
        ),
        (
            "scheme is case-sensitive",
            pod("    lifecycle: {postStart: {httpGet: {port: 80, scheme: http}}}\n", ""),
            vec![r#"pod "web": spec.containers[0].lifecycle.postStart.httpGet.scheme: Unsupported value: "http": supported values: "HTTP", "HTTPS""#.into()],
        ),
        (
            "header name",
            pod("    lifecycle: {postStart: {httpGet: {port: 80, httpHeaders: [{name: X_Bad, value: v}]}}}\n", ""),
            vec![r#"pod "web": spec.containers[0].lifecycle.postStart.httpGet.httpHeaders: Invalid value: "X_Bad": a valid HTTP header must consist of alphanumeric characters or '-' (e.g. 'X-Header-Name', regex used for validation is '[-A-Za-z0-9]+')"#.into()],
        ),
        (
            "sleep longer than grace",
            pod("    lifecycle: {preStop: {sleep: {seconds: 11}}}\n", "  terminationGracePeriodSeconds: 10\n"),
            vec![r#"pod "web": spec.containers[0].lifecycle.preStop.sleep: Invalid value: 11: must be non-negative and less than terminationGracePeriodSeconds (10)"#.into()],
        ),
        (
            "sleep checked against the defaulted grace (30), as the API server does",
            pod("    lifecycle: {preStop: {sleep: {seconds: 31}}}\n", ""),
            vec![r#"pod "web": spec.containers[0].lifecycle.preStop.sleep: Invalid value: 31: must be non-negative and less than terminationGracePeriodSeconds (30)"#.into()],
        ),
        (
            "negative sleep",
            pod("    lifecycle: {postStart: {sleep: {seconds: -1}}}\n", ""),
            vec![r#"pod "web": spec.containers[0].lifecycle.postStart.sleep: Invalid value: -1: must be non-negative and less than terminationGracePeriodSeconds (30)"#.into()],
        ),
        (
            "lifecycle on a plain init container",
            pod("", "  initContainers:\n  - {name: init, image: busybox, lifecycle: {postStart: {sleep: {seconds: 1}}}}\n"),
            vec![r#"pod "web": spec.initContainers[0].lifecycle: Forbidden: may not be set for init containers without restartPolicy=Always"#.into()],
        ),
        (
            "init container restartPolicy other than Always",
            pod("", "  initContainers:\n  - {name: init, image: busybox, restartPolicy: OnFailure}\n"),
            vec![r#"pod "web": spec.initContainers[0].restartPolicy: Unsupported value: "OnFailure": supported values: "Always""#.into()],
        ),
        (
            "restartPolicy on a regular container",
            pod("    restartPolicy: Always\n", ""),
            vec![r#"pod "web": spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers"#.into()],
        ),
        (
            "ephemeral container with lifecycle",
            pod("", "  ephemeralContainers:\n  - {name: debug, image: busybox, lifecycle: {preStop: {sleep: {seconds: 1}}}}\n"),
            vec![
                r#"pod "web": spec.ephemeralContainers: Forbidden: cannot be set on create"#.into(),
                r#"pod "web": spec.ephemeralContainers[0].lifecycle: Forbidden: cannot be set for an Ephemeral Container"#.into(),
            ],
        ),
        (
            "duplicate container names across init and app containers",
            pod("  - {name: app, image: busybox}\n", "  initContainers:\n  - {name: app, image: busybox}\n"),
            vec![
                r#"pod "web": spec.containers[1].name: Duplicate value: "app""#.into(),
                r#"pod "web": spec.initContainers[0].name: Duplicate value: "app""#.into(),
            ],
        ),
        (
            "container name not a DNS label",
            pod("  - {name: My_App, image: busybox}\n", ""),
            vec![format!(r#"pod "web": spec.containers[1].name: Invalid value: "My_App": {LABEL_MSG}"#)],
        ),
        (
            "container name with dots",
            pod("  - {name: my.app, image: busybox}\n", ""),
            vec![r#"pod "web": spec.containers[1].name: Invalid value: "my.app": must not contain dots"#.into()],
        ),
        (
            "missing image",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: app}]\n".into(),
            vec![r#"pod "web": spec.containers[0].image: Required value"#.into()],
        ),
        (
            "volume mount of an undeclared volume",
            pod("    volumeMounts: [{name: data, mountPath: /data}]\n", ""),
            vec![r#"pod "web": spec.containers[0].volumeMounts[0].name: Not found: "data""#.into()],
        ),
        (
            "subPath escaping the volume (API server path quirk kept)",
            pod("    volumeMounts: [{name: data, mountPath: /data, subPath: ../etc}]\n", "  volumes: [{name: data, emptyDir: {}}]\n"),
            vec![r#"pod "web": spec.containers[0].volumeMounts.subPath: Invalid value: "../etc": must not contain '..'"#.into()],
        ),
        (
            "unsupported volume kind (wasmhook)",
            pod("    volumeMounts: [{name: cfg, mountPath: /cfg}]\n", "  volumes: [{name: cfg, configMap: {name: settings}}]\n"),
            vec![r#"pod "web": spec.volumes[0]: Forbidden: configMap volumes are not supported: wasmhook supports emptyDir and hostPath volumes"#.into()],
        ),
        (
            "volume without a type",
            pod("", "  volumes: [{name: cfg}]\n"),
            vec![r#"pod "web": spec.volumes[0]: Required value: must specify a volume type"#.into()],
        ),
        (
            "two volume types",
            pod("", "  volumes: [{name: cfg, emptyDir: {}, hostPath: {path: /tmp}}]\n"),
            vec![r#"pod "web": spec.volumes[0].hostPath: Forbidden: may not specify more than 1 volume type"#.into()],
        ),
        (
            "hostPath without path",
            pod("", "  volumes: [{name: cfg, hostPath: {path: \"\"}}]\n"),
            vec![r#"pod "web": spec.volumes[0].hostPath.path: Required value"#.into()],
        ),
        (
            "pod restartPolicy",
            pod("", "  restartPolicy: Sometimes\n"),
            vec![r#"pod "web": spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "Never", "OnFailure""#.into()],
        ),
        (
            "negative grace",
            pod("", "  terminationGracePeriodSeconds: -1\n"),
            vec![r#"pod "web": spec.terminationGracePeriodSeconds: Invalid value: -1: must be greater than or equal to 0"#.into()],
        ),
        (
            "no containers",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: []}\n".into(),
            vec![r#"pod "web": spec.containers: Required value"#.into()],
        ),
        (
            "no spec at all",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\n".into(),
            vec![r#"pod "web": spec.containers: Required value"#.into()],
        ),
        (
            "no name",
            "apiVersion: v1\nkind: Pod\nmetadata: {}\nspec: {containers: [{name: app, image: nginx}]}\n".into(),
            vec!["document 1: metadata.name: Required value: name or generateName is required".into()],
        ),
        (
            "pod name not a subdomain",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: Web}\nspec: {containers: [{name: app, image: nginx}]}\n".into(),
            vec![r#"pod "Web": metadata.name: Invalid value: "Web": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"#.into()],
        ),
        (
            "container port out of range",
            pod("    ports: [{containerPort: 0}, {containerPort: 70000, name: http}, {containerPort: 81, name: http}]\n", ""),
            vec![
                r#"pod "web": spec.containers[0].ports[0].containerPort: Required value"#.into(),
                r#"pod "web": spec.containers[0].ports[1].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"#.into(),
                r#"pod "web": spec.containers[0].ports[2].name: Duplicate value: "http""#.into(),
            ],
        ),
        (
            "hook module not found (wasmhook)",
            pod("    lifecycle: {postStart: {exec: {command: [hooks/missing.wasm, arg]}}}\n", ""),
            vec![format!(r#"pod "web": spec.containers[0].lifecycle.postStart.exec.command[0]: Not found: "hooks/missing.wasm": module not found (tried {missing_tried})"#)],
        ),
        (
            "hook module does not compile (wasmhook)",
            pod("    lifecycle: {preStop: {exec: {command: [hooks/broken.wat]}}}\n", ""),
            vec![r#"pod "web": spec.containers[0].lifecycle.preStop.exec.command[0]: Invalid value: "hooks/broken.wat": failed to compile: expected `(`"#.into()],
        ),
        (
            "all errors at once",
            pod(
                "    lifecycle: {postStart: {httpGet: {port: 0, scheme: ftp}}, preStop: {}}\n  - {name: app, image: busybox}\n",
                "  restartPolicy: Sometimes\n",
            ),
            vec![
                r#"pod "web": spec.containers[0].lifecycle.postStart.httpGet.port: Invalid value: 0: must be between 1 and 65535, inclusive"#.into(),
                r#"pod "web": spec.containers[0].lifecycle.postStart.httpGet.scheme: Unsupported value: "ftp": supported values: "HTTP", "HTTPS""#.into(),
                r#"pod "web": spec.containers[0].lifecycle.preStop: Required value: must specify a handler type"#.into(),
                r#"pod "web": spec.containers[1].name: Duplicate value: "app""#.into(),
                r#"pod "web": spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "Never", "OnFailure""#.into(),
            ],
        ),
    ];
    let mut failures = Vec::new();
    for (name, yaml, want) in &cases {
        let got = rel(errors(yaml));
        if &got != want {
            failures.push(format!("case {name:?}:\n  want {want:#?}\n  got  {got:#?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn annotation_errors() {
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  annotations:\n    wasmhook.dev/hook-timout: 5s\n    wasmhook.dev/hook-timeout: 5 seconds\n    wasmhook.dev/hook-timeout.app.start: 5s\n    wasmhook.dev/hook-timeout.api: 5s\n    wasmhook.dev/hook-fuel: lots\n    wasmhook.dev/hook-max-memory.app: 64MB\n    wasmhook.dev/hook-network: maybe\n    wasmhook.dev/http-status: loose\n    wasmhook.dev/exec-policy: native\n    wasmhook.dev/hook-fuel.app.preStop.x: \"1\"\n    other.example/ignored: anything\nspec:\n  containers: [{name: app, image: nginx}]\n";
    let want = vec![
        r#"pod "web": metadata.annotations[wasmhook.dev/exec-policy]: Unsupported value: "native": supported values: "auto", "wasm-only""#,
        r#"pod "web": metadata.annotations[wasmhook.dev/hook-fuel]: Invalid value: "lots": must be a positive integer"#,
        r#"pod "web": metadata.annotations[wasmhook.dev/hook-fuel.app.preStop.x]: Invalid value: "wasmhook.dev/hook-fuel.app.preStop.x": must be wasmhook.dev/hook-fuel, wasmhook.dev/hook-fuel.<container> or wasmhook.dev/hook-fuel.<container>.<postStart|preStop>"#,
        r#"pod "web": metadata.annotations[wasmhook.dev/hook-max-memory.app]: Invalid value: "64MB": must be a quantity such as 64Mi, 1Gi, 500M or a plain number of bytes"#,
        r#"pod "web": metadata.annotations[wasmhook.dev/hook-network]: Unsupported value: "maybe": supported values: "deny", "pod", "allow""#,
        r#"pod "web": metadata.annotations[wasmhook.dev/hook-timeout]: Invalid value: "5 seconds": must be a duration such as 500ms, 30s, 2m or 1m30s"#,
        r#"pod "web": metadata.annotations[wasmhook.dev/hook-timeout.api]: Not found: "api": no container or init container has this name"#,
        r#"pod "web": metadata.annotations[wasmhook.dev/hook-timeout.app.start]: Unsupported value: "start": supported values: "postStart", "preStop""#,
        r#"pod "web": metadata.annotations[wasmhook.dev/hook-timout]: Unsupported value: "wasmhook.dev/hook-timout": supported values: "wasmhook.dev/hook-timeout", "wasmhook.dev/hook-fuel", "wasmhook.dev/hook-max-memory", "wasmhook.dev/hook-network", "wasmhook.dev/http-status", "wasmhook.dev/exec-policy""#,
        r#"pod "web": metadata.annotations[wasmhook.dev/http-status]: Unsupported value: "loose": supported values: "ignore", "strict""#,
    ];
    assert_eq!(rel(errors(yaml)), want);
}

#[test]
fn probe_fields_are_validated_as_the_api_server_does() {
    let probes = "    livenessProbe: {exec: {command: [hooks/ready.wat]}, successThreshold: 2, initialDelaySeconds: -1, terminationGracePeriodSeconds: 0}\n    readinessProbe: {tcpSocket: {port: 80}, terminationGracePeriodSeconds: 5, periodSeconds: -3}\n    startupProbe: {exec: {command: [hooks/missing.wasm]}, successThreshold: 3}\n";
    let missing = fixtures().join("hooks/missing.wasm");
    let hooks_dir_tried = format!("{:?}", missing.display().to_string());
    let want = vec![
        r#"pod "web": spec.containers[0].livenessProbe.initialDelaySeconds: Invalid value: -1: must be greater than or equal to 0"#.to_string(),
        r#"pod "web": spec.containers[0].livenessProbe.terminationGracePeriodSeconds: Invalid value: 0: must be greater than 0"#.into(),
        r#"pod "web": spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1"#.into(),
        r#"pod "web": spec.containers[0].readinessProbe.periodSeconds: Invalid value: -3: must be greater than or equal to 0"#.into(),
        r#"pod "web": spec.containers[0].readinessProbe.terminationGracePeriodSeconds: Invalid value: 5: must not be set for readinessProbes"#.into(),
        format!(r#"pod "web": spec.containers[0].startupProbe.exec.command[0]: Not found: "hooks/missing.wasm": module not found (tried {hooks_dir_tried})"#),
        r#"pod "web": spec.containers[0].startupProbe.successThreshold: Invalid value: 3: must be 1"#.into(),
    ];
    assert_eq!(rel(errors(&pod(probes, ""))), want);
    // Zero means unset: the defaults (1, 10, 1, 3) apply, and a valid probe passes.
    let ok = "    livenessProbe: {exec: {command: [hooks/ready.wat]}, timeoutSeconds: 0, successThreshold: 0}\n";
    assert_eq!(errors(&pod(ok, "")), Vec::<String>::new());
    let pods = load_str(
        &pod(ok, ""),
        &fixtures().join("pod.yaml"),
        &LoadOptions::default(),
    )
    .unwrap();
    let p = pods[0].pod.spec.as_ref().unwrap().containers[0]
        .liveness_probe
        .clone()
        .unwrap();
    assert_eq!(
        (
            p.timeout_seconds,
            p.period_seconds,
            p.success_threshold,
            p.failure_threshold
        ),
        (Some(1), Some(10), Some(1), Some(3))
    );
}

#[test]
fn stop_signal_needs_the_pod_os_and_a_signal_of_that_os() {
    let lc = "    lifecycle: {stopSignal: SIGQUIT}\n";
    assert_eq!(
        rel(errors(&pod(lc, ""))),
        [
            r#"pod "web": spec.containers[0].lifecycle.stopSignal: Forbidden: may not be set for containers with empty `spec.os.name`"#
        ]
    );
    assert_eq!(
        errors(&pod(lc, "  os: {name: linux}\n")),
        Vec::<String>::new()
    );
    assert_eq!(
        errors(&pod(
            "    lifecycle: {stopSignal: SIGRTMIN+3}\n",
            "  os: {name: linux}\n"
        )),
        Vec::<String>::new()
    );
    assert_eq!(
        rel(errors(&pod(lc, "  os: {name: windows}\n"))),
        [
            r#"pod "web": spec.containers[0].lifecycle.stopSignal: Unsupported value: "SIGQUIT": supported values: "SIGKILL", "SIGTERM""#
        ]
    );
    let bad = rel(errors(&pod(
        "    lifecycle: {stopSignal: TERM}\n",
        "  os: {name: linux}\n",
    )));
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(
        bad[0].starts_with(r#"pod "web": spec.containers[0].lifecycle.stopSignal: Unsupported value: "TERM": supported values: "SIGABRT", "SIGALRM", "SIGBUS", "SIGCHLD", "SIGCLD","#),
        "{bad:?}"
    );
    assert!(
        bad[0].ends_with(r#""SIGWINCH", "SIGXCPU", "SIGXFSZ""#),
        "{bad:?}"
    );
}
