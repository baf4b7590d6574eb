//! Pod manifests: parsing, defaults, validation messages (exact API server text), wasmhook's
//! own checks, annotations, and a no-panic property test.

use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::prelude::*;
use wasmhook::handlers::{HookKind, HookSettings, HttpStatusMode};
use wasmhook::hook::{ExecPolicy, HookNetwork, HostCommand};
use wasmhook::manifest::annotations::{exec_policy, hook_settings};
use wasmhook::manifest::{
    check_files, load_file, load_str, resolve_module, validate, LoadOptions, ManifestError,
    UnknownFields,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/manifests")
}

/// The tests' stand-in for the wasm compiler: anything named `*broken*` fails to compile.
fn checker(p: &Path) -> Result<HostCommand, String> {
    if p.to_string_lossy().contains("broken") {
        Err("failed to compile: expected `(`".to_string())
    } else if wasmhook::wasm::is_module_file(p) {
        Ok(HostCommand::Module)
    } else {
        Ok(HostCommand::Native)
    }
}

/// Load `yaml` as if it were `fixtures/pod.yaml` and validate it; every problem rendered.
fn errors_with(yaml: &str, opts: &LoadOptions) -> Vec<String> {
    match load_str(yaml, &fixtures().join("pod.yaml"), opts) {
        Err(e) => e.lines(),
        Ok(pods) => pods
            .iter()
            .flat_map(|p| {
                validate(p, opts, &checker)
                    .into_iter()
                    .map(|e| p.render(&e.to_string()))
                    .collect::<Vec<_>>()
            })
            .collect(),
    }
}

fn errors(yaml: &str) -> Vec<String> {
    errors_with(yaml, &LoadOptions::default())
}

/// A pod `web` whose single container `app` gets `extra` (flow-style YAML lines, indented
/// by the caller as container fields) and whose spec gets `spec_extra`.
fn pod(container_extra: &str, spec_extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n{spec_extra}  containers:\n  - name: app\n    image: nginx\n{container_extra}"
    )
}

/// Strip the `FILE: ` prefix so expectations stay readable.
fn rel(lines: Vec<String>) -> Vec<String> {
    let prefix = format!("{}: ", fixtures().join("pod.yaml").display());
    lines
        .into_iter()
        .map(|l| l.strip_prefix(&prefix).map(str::to_string).unwrap_or(l))
        .collect()
}

const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

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
fn valid_manifests() {
    let valid = [
        // sleep equal to grace is accepted despite the wording
        pod("    lifecycle: {preStop: {sleep: {seconds: 10}}}\n", "  terminationGracePeriodSeconds: 10\n"),
        pod("    lifecycle: {preStop: {sleep: {seconds: 0}}}\n", ""),
        // sidecar with hooks and probes
        pod("", "  initContainers:\n  - {name: side, image: busybox, restartPolicy: Always, lifecycle: {postStart: {exec: {command: [hooks/ready.wat]}}}, startupProbe: {httpGet: {port: 80}}}\n"),
        // named port that exists; tcpSocket; absolute module path
        pod("    ports: [{containerPort: 8080, name: http}]\n    lifecycle: {postStart: {httpGet: {port: http}}, preStop: {tcpSocket: {port: http}}}\n", ""),
        pod(
            &format!("    lifecycle: {{postStart: {{exec: {{command: [\"{}\"]}}}}}}\n", fixtures().join("hooks/ready.wat").display()),
            "",
        ),
        // generateName stands in for name
        "apiVersion: v1\nkind: Pod\nmetadata: {generateName: web-}\nspec: {containers: [{name: app, image: nginx}]}\n".to_string(),
    ];
    for yaml in &valid {
        assert_eq!(errors(yaml), Vec::<String>::new(), "{yaml}");
    }
    let pods = load_str(&valid[5], Path::new("gen.yaml"), &LoadOptions::default()).unwrap();
    let name = pods[0].name();
    assert!(name.starts_with("web-") && name.len() == 9, "{name}");
}

#[test]
fn fixture_pod_is_valid_and_defaulted() {
    let opts = LoadOptions::default();
    let pods = load_file(&fixtures().join("web.yaml"), &opts).unwrap();
    assert_eq!(pods.len(), 1);
    let p = &pods[0];
    assert_eq!(validate(p, &opts, &checker), vec![]);
    assert_eq!(p.name(), "web");
    assert_eq!(p.document, 1);
    assert_eq!(p.manifest_dir(), fixtures());
    let meta = &p.pod.metadata;
    assert_eq!(meta.namespace.as_deref(), Some("default"));
    let uid = meta.uid.clone().unwrap();
    assert_eq!(uid.len(), 36);
    assert_eq!(uid.matches('-').count(), 4);
    // stable across loads
    let again = load_file(&fixtures().join("web.yaml"), &opts).unwrap();
    assert_eq!(again[0].pod.metadata.uid.as_deref(), Some(uid.as_str()));
    let spec = p.pod.spec.as_ref().unwrap();
    assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
    assert_eq!(spec.termination_grace_period_seconds, Some(45));
    let init = &spec.init_containers.as_ref().unwrap()[0];
    let get = init
        .lifecycle
        .as_ref()
        .unwrap()
        .post_start
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(get.path.as_deref(), Some("/ready"));
    assert_eq!(get.scheme.as_deref(), Some("HTTP"));

    // defaults on a bare pod
    let bare = load_str(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: bare}\nspec:\n  containers:\n  - name: app\n    image: nginx\n    lifecycle: {postStart: {httpGet: {port: 80}}}\n",
        Path::new("bare.yaml"),
        &opts,
    )
    .unwrap();
    let spec = bare[0].pod.spec.as_ref().unwrap();
    assert_eq!(spec.termination_grace_period_seconds, Some(30));
    assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
    let get = spec.containers[0]
        .lifecycle
        .as_ref()
        .unwrap()
        .post_start
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(get.path.as_deref(), Some("/"));
    assert_eq!(get.scheme.as_deref(), Some("HTTP"));
    assert_eq!(bare[0].manifest_dir(), Path::new("."));
    assert_ne!(bare[0].pod.metadata.uid, p.pod.metadata.uid);
}

#[test]
fn yaml_syntax_error_has_line_and_column() {
    let path = fixtures().join("syntax-error.yaml");
    let err = load_file(&path, &LoadOptions::default()).unwrap_err();
    let ManifestError::Syntax { location, .. } = &err else {
        panic!("{err:?}")
    };
    let (line, col) = location.unwrap();
    assert_eq!(line, 9, "{err}");
    assert!(col >= 1, "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("{}:9:{col}: ", path.display())),
        "{text}"
    );
    // the parser's context (where the unclosed sequence began) is kept
    assert!(
        text.ends_with("while parsing a flow sequence at line 8 column 12"),
        "{text}"
    );

    // a tab where indentation is expected, mid-stream in a multi-document file
    let err = load_str(
        "apiVersion: v1\nkind: Pod\n---\nmetadata:\n\tname: x\n",
        Path::new("t.yaml"),
        &LoadOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().starts_with("t.yaml:5:"), "{err}");
}

#[test]
fn json_manifests() {
    let opts = LoadOptions::default();
    let pods = load_file(&fixtures().join("web.json"), &opts).unwrap();
    assert_eq!(pods.len(), 1);
    assert_eq!(pods[0].name(), "web-json");
    assert_eq!(pods[0].pod.metadata.namespace.as_deref(), Some("hooks"));
    assert_eq!(validate(&pods[0], &opts, &checker), vec![]);

    let err = load_str(
        "{\n  \"apiVersion\": \"v1\",\n  \"kind\": \"Pod\"\n  \"metadata\": {}\n}",
        Path::new("p.json"),
        &opts,
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "p.json:4:3: expected `,` or `}`");

    let err = load_str(
        r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"},"spec":{"containers":[{"name":"a","image":"i","lifecycle":{"preStop":{"httpGet":{"port":true}}}}]}}"#,
        Path::new("p.json"),
        &opts,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"p.json: pod "x": spec.containers[0].lifecycle.preStop.httpGet.port: invalid type: boolean `true`, expected IntOrString"#
    );
}

#[test]
fn type_errors_name_the_field_path() {
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - {name: a, image: i}\n  - name: b\n    image: i\n    lifecycle: {preStop: {httpGet: {port: [80]}}}\n";
    let lines = load_str(yaml, Path::new("pod.yaml"), &LoadOptions::default())
        .unwrap_err()
        .lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(r#"pod.yaml: pod "web": spec.containers[1].lifecycle.preStop.httpGet.port: invalid type: sequence"#),
        "{lines:?}"
    );
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  annotations: {wasmhook.dev/hook-fuel: 1000}\nspec: {containers: [{name: a, image: i}]}\n";
    let lines = load_str(yaml, Path::new("pod.yaml"), &LoadOptions::default())
        .unwrap_err()
        .lines();
    assert!(
        lines[0].starts_with(r#"pod.yaml: pod "web": metadata.annotations[wasmhook.dev/hook-fuel]: invalid type: integer `1000`, expected a string"#),
        "{lines:?}"
    );
}

#[test]
fn wrong_kind_and_missing_header() {
    let opts = LoadOptions::default();
    let lines = load_str("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n---\nmetadata: {name: x}\n---\n- 1\n", Path::new("m.yaml"), &opts)
        .unwrap_err()
        .lines();
    assert_eq!(
        lines,
        vec![
            r#"m.yaml: pod "d": apiVersion: Unsupported value: "apps/v1": supported values: "v1" (wasmhook runs v1 Pods)"#,
            r#"m.yaml: pod "d": kind: Unsupported value: "Deployment": supported values: "Pod" (wasmhook runs Pods)"#,
            r#"m.yaml: pod "x": apiVersion not set"#,
            r#"m.yaml: pod "x": kind not set"#,
            "m.yaml: document 3: expected a Pod object (a mapping with apiVersion, kind, metadata, spec), found a list",
        ]
    );
}

#[test]
fn multi_document_files() {
    let opts = LoadOptions::default();
    let pods = load_file(&fixtures().join("multi/pods.yaml"), &opts).unwrap();
    let got: Vec<(&str, usize)> = pods.iter().map(|p| (p.name(), p.document)).collect();
    assert_eq!(got, vec![("one", 1), ("two", 4), ("three", 5)]);
    // the relative module resolves against the manifest's own directory
    for p in &pods {
        assert_eq!(validate(p, &opts, &checker), vec![], "{}", p.name());
    }
    assert!(load_str("", Path::new("empty.yaml"), &opts)
        .unwrap()
        .is_empty());
    assert!(load_str("---\n---\n", Path::new("empty.yaml"), &opts)
        .unwrap()
        .is_empty());
}

#[test]
fn unknown_fields_error_or_warn() {
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: web, labells: {a: b}}\nspec:\n  containers:\n  - name: app\n    image: nginx\n    lifecyle: {postStart: {exec: {command: [x]}}}\n    lifecycle: {preStop: {httpGet: {port: 80, hots: x}}}\n";
    let strict = load_str(yaml, Path::new("pod.yaml"), &LoadOptions::default()).unwrap_err();
    assert_eq!(
        strict.lines(),
        vec![
            r#"pod.yaml: pod "web": unknown field "metadata.labells""#,
            r#"pod.yaml: pod "web": unknown field "spec.containers[0].lifecyle""#,
            r#"pod.yaml: pod "web": unknown field "spec.containers[0].lifecycle.preStop.httpGet.hots""#,
        ]
    );
    let warn = LoadOptions {
        unknown_fields: UnknownFields::Warn,
        ..LoadOptions::default()
    };
    let pods = load_str(yaml, Path::new("pod.yaml"), &warn).unwrap();
    assert_eq!(pods[0].warnings, strict.lines());
    assert_eq!(validate(&pods[0], &warn, &checker), vec![]);
}

#[test]
fn annotations_most_specific_wins() {
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  annotations:\n    wasmhook.dev/hook-timeout: 5s\n    wasmhook.dev/hook-timeout.app: 10s\n    wasmhook.dev/hook-timeout.app.preStop: 1m30s\n    wasmhook.dev/hook-fuel: \"1000\"\n    wasmhook.dev/hook-fuel.side.postStart: \"2000\"\n    wasmhook.dev/hook-max-memory.app: 1.5Gi\n    wasmhook.dev/hook-network.app.postStart: allow\n    wasmhook.dev/http-status.side: strict\nspec:\n  initContainers: [{name: side, image: i, restartPolicy: Always}]\n  containers: [{name: app, image: i}, {name: other, image: i}]\n";
    let opts = LoadOptions::default();
    let pods = load_str(yaml, Path::new("pod.yaml"), &opts).unwrap();
    assert_eq!(validate(&pods[0], &opts, &checker), vec![]);
    let pod = &pods[0].pod;
    let defaults = HookSettings {
        timeout: Duration::from_secs(30),
        fuel: None,
        max_memory: 64 << 20,
        network: HookNetwork::Deny,
        http_status: HttpStatusMode::Ignore,
        exec_policy: ExecPolicy::Auto,
    };
    let app_post = hook_settings(pod, "app", HookKind::PostStart, &defaults);
    assert_eq!(
        app_post,
        HookSettings {
            timeout: Duration::from_secs(10),
            fuel: Some(1000),
            max_memory: 1_610_612_736,
            network: HookNetwork::Allow,
            http_status: HttpStatusMode::Ignore,
            exec_policy: ExecPolicy::Auto,
        }
    );
    let app_pre = hook_settings(pod, "app", HookKind::PreStop, &defaults);
    assert_eq!(app_pre.timeout, Duration::from_secs(90));
    assert_eq!(app_pre.network, HookNetwork::Deny);
    let other = hook_settings(pod, "other", HookKind::PreStop, &defaults);
    assert_eq!(
        other,
        HookSettings {
            timeout: Duration::from_secs(5),
            fuel: Some(1000),
            ..defaults.clone()
        }
    );
    let side = hook_settings(pod, "side", HookKind::PostStart, &defaults);
    assert_eq!(side.fuel, Some(2000));
    assert_eq!(side.http_status, HttpStatusMode::Strict);
    assert_eq!(side.timeout, Duration::from_secs(5));
    // no annotations at all: the engine defaults
    let bare = load_str(&pod_yaml_plain(), Path::new("p.yaml"), &opts).unwrap();
    assert_eq!(
        hook_settings(&bare[0].pod, "app", HookKind::PreStop, &defaults),
        defaults
    );
    assert_eq!(
        exec_policy(&bare[0].pod, ExecPolicy::Auto),
        ExecPolicy::Auto
    );
    assert_eq!(exec_policy(pod, ExecPolicy::Auto), ExecPolicy::Auto);
}

fn pod_yaml_plain() -> String {
    pod("", "")
}

#[test]
fn exec_policy_annotation_can_only_tighten_the_flag() {
    let pod_with = |policy: &str| {
        let yaml = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: web, annotations: {{wasmhook.dev/exec-policy: {policy}}}}}\nspec: {{containers: [{{name: app, image: i}}]}}\n");
        let opts = LoadOptions::default();
        let pods = load_str(&yaml, Path::new("p.yaml"), &opts).unwrap();
        assert_eq!(validate(&pods[0], &opts, &checker), vec![]);
        pods[0].pod.clone()
    };
    let (auto, wasm_only) = (pod_with("auto"), pod_with("wasm-only"));
    assert_eq!(
        exec_policy(&wasm_only, ExecPolicy::Auto),
        ExecPolicy::WasmOnly
    );
    assert_eq!(exec_policy(&auto, ExecPolicy::Auto), ExecPolicy::Auto);
    // A pod cannot loosen the node's policy.
    assert_eq!(
        exec_policy(&auto, ExecPolicy::WasmOnly),
        ExecPolicy::WasmOnly
    );
}

#[test]
fn module_resolution() {
    let dir = fixtures();
    let hooks = dir.join("hooks");
    // relative to the manifest first
    assert_eq!(
        resolve_module("hooks/ready.wat", &dir, None),
        Ok(hooks.join("ready.wat"))
    );
    // then the hooks dir
    assert_eq!(
        resolve_module("ready.wat", &dir.join("multi"), Some(&hooks)),
        Ok(hooks.join("ready.wat"))
    );
    // absolute as is
    let abs = hooks.join("ready.wat");
    assert_eq!(
        resolve_module(abs.to_str().unwrap(), Path::new("/nonexistent"), None),
        Ok(abs.clone())
    );
    let err = resolve_module("nope.wasm", &dir, Some(&hooks)).unwrap_err();
    assert_eq!(
        err,
        format!(
            "module not found (tried {:?}, {:?})",
            dir.join("nope.wasm").display().to_string(),
            hooks.join("nope.wasm").display().to_string()
        )
    );
    assert!(resolve_module("", &dir, None).is_err());
    // a directory is not a module
    assert!(resolve_module("hooks", &dir, None).is_err());
}

#[test]
fn check_files_reports_everything() {
    let dir = fixtures();
    let calls = std::cell::Cell::new(0);
    let counting = |p: &Path| {
        calls.set(calls.get() + 1);
        checker(p)
    };
    let files = vec![
        dir.join("web.yaml"),
        dir.join("multi/pods.yaml"),
        dir.join("multi/dup.yaml"),
        dir.join("syntax-error.yaml"),
        dir.join("web.json"),
        dir.join("does-not-exist.yaml"),
    ];
    let report = check_files(&files, &LoadOptions::default(), &counting);
    assert!(!report.is_valid());
    // ready.wat is referenced from web.yaml and multi/pods.yaml but compiled once
    assert_eq!(calls.get(), 1);
    let names: Vec<&str> = report.pods.iter().map(|p| p.name()).collect();
    assert_eq!(names, vec!["web", "one", "two", "three", "web-json"]);
    assert_eq!(report.errors.len(), 3, "{:#?}", report.errors);
    assert_eq!(
        report.errors[0],
        format!(
            r#"{}: pod "one": metadata.name: Duplicate value: "one": pod already defined in {} (document 1)"#,
            dir.join("multi/dup.yaml").display(),
            dir.join("multi/pods.yaml").display()
        )
    );
    assert!(
        report.errors[1].starts_with(&format!("{}:9:", dir.join("syntax-error.yaml").display()))
    );
    assert!(
        report.errors[2].starts_with(&format!("{}: ", dir.join("does-not-exist.yaml").display()))
    );
    assert_eq!(
        report.valid_lines()[0],
        format!(r#"{}: pod "web" is valid"#, dir.join("web.yaml").display())
    );
    assert!(report.warnings.is_empty());
}

/// Every example pod in `examples/pods` loads and validates. Compiled `.wasm` hooks are build
/// artifacts (`scripts/build-hooks.sh`), so a missing `.wasm` is tolerated; anything else
/// must be clean.
#[test]
fn example_pods_validate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let Ok(entries) = std::fs::read_dir(root.join("examples/pods")) else {
        return;
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        })
        .collect();
    files.sort();
    let opts = LoadOptions {
        unknown_fields: UnknownFields::Error,
        hooks_dir: Some(root.join("examples/hooks")),
        ..LoadOptions::default()
    };
    let exists = |p: &Path| {
        if p.is_file() {
            Ok(HostCommand::Module)
        } else {
            Err("missing".to_string())
        }
    };
    let mut problems = Vec::new();
    for f in &files {
        match load_file(f, &opts) {
            Err(e) => problems.extend(e.lines()),
            Ok(pods) => {
                for p in &pods {
                    for e in validate(p, &opts, &exists) {
                        let unbuilt = e.path.ends_with(".exec.command[0]")
                            && matches!(&e.kind, wasmhook::manifest::ErrorKind::NotFound(wasmhook::manifest::BadValue::Str(m)) if m.ends_with(".wasm"));
                        if !unbuilt {
                            problems.push(p.render(&e.to_string()));
                        }
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Keys and leaves that make generated documents look like pods often enough to reach
/// the validator.
const KEYS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "name",
    "namespace",
    "generateName",
    "annotations",
    "spec",
    "containers",
    "initContainers",
    "ephemeralContainers",
    "image",
    "lifecycle",
    "postStart",
    "preStop",
    "exec",
    "command",
    "httpGet",
    "port",
    "path",
    "scheme",
    "httpHeaders",
    "value",
    "sleep",
    "seconds",
    "tcpSocket",
    "volumes",
    "volumeMounts",
    "mountPath",
    "subPath",
    "emptyDir",
    "hostPath",
    "configMap",
    "ports",
    "containerPort",
    "restartPolicy",
    "terminationGracePeriodSeconds",
    "startupProbe",
    "grpc",
    "wasmhook.dev/hook-timeout",
    "wasmhook.dev/hook-fuel.app",
    "wasmhook.dev/hook-max-memory.app.preStop",
    "wasmhook.dev/http-status",
    "wasmhook.dev/x",
    "<<",
    "status",
];
const LEAVES: &[&str] = &[
    "v1",
    "Pod",
    "app",
    "web",
    "http",
    "HTTP",
    "Always",
    "Never",
    "OnFailure",
    "hooks/ready.wat",
    "/abs/x.wasm",
    "",
    "8080",
    "..",
    "1m30s",
    "64Mi",
    "1e99",
    "-5s",
    "allow",
    "strict",
    "true",
    "\u{0}",
    "é-名",
    "Very--Long_Port-Name-",
];

fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        (-70000i64..70000).prop_map(|n| serde_json::json!(n)),
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        proptest::sample::select(LEAVES).prop_map(|s| serde_json::json!(s)),
        ".{0,12}".prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            proptest::collection::vec((proptest::sample::select(KEYS), inner), 0..6).prop_map(
                |kv| {
                    serde_json::Value::Object(
                        kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
                    )
                }
            ),
        ]
    })
}

/// A random tree; a pod header over random metadata and spec; or a well-formed pod whose
/// annotations, lifecycle, ports and volumes are random (to reach the validator often).
fn arb_doc() -> impl Strategy<Value = serde_json::Value> {
    (arb_json(), arb_json(), arb_json(), arb_json(), 0..3u8).prop_map(|(a, b, c, d, shape)| {
        match shape {
            0 => a,
            1 => serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": a, "spec": b}),
            _ => serde_json::json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "web", "annotations": a},
                "spec": {
                    "volumes": d,
                    "containers": [{"name": "app", "image": "i", "lifecycle": b, "ports": c}],
                    "initContainers": [{"name": "side", "image": "i", "restartPolicy": "Always", "lifecycle": b}],
                },
            }),
        }
    })
}

fn exercise(text: &str, source: &Path) {
    for opts in [
        LoadOptions::default(),
        LoadOptions {
            unknown_fields: UnknownFields::Warn,
            hooks_dir: Some(fixtures().join("hooks")),
            ..LoadOptions::default()
        },
    ] {
        match load_str(text, source, &opts) {
            Ok(pods) => {
                for p in &pods {
                    for e in validate(p, &opts, &checker) {
                        let _ = p.render(&e.to_string());
                    }
                    for kind in [HookKind::PostStart, HookKind::PreStop] {
                        let _ = hook_settings(&p.pod, "app", kind, &HookSettings::default());
                    }
                    let _ = exec_policy(&p.pod, ExecPolicy::Auto);
                }
            }
            Err(e) => {
                let _ = e.lines();
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        exercise(&text, &fixtures().join("fuzz.yaml"));
        exercise(&text, &fixtures().join("fuzz.json"));
    }

    #[test]
    fn arbitrary_pod_like_trees_never_panic(docs in proptest::collection::vec(arb_doc(), 1..3)) {
        let json: Vec<String> = docs.iter().map(|d| d.to_string()).collect();
        exercise(&json.join("\n"), &fixtures().join("fuzz.json"));
        let yaml: Vec<String> = docs.iter().filter_map(|d| serde_yaml_ng::to_string(d).ok()).collect();
        exercise(&yaml.join("---\n"), &fixtures().join("fuzz.yaml"));
    }
}

#[test]
fn pathological_inputs_are_errors_not_crashes() {
    let opts = LoadOptions::default();
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(load_str(&deep, Path::new("deep.yaml"), &opts).is_err());
    assert!(load_str(&deep, Path::new("deep.json"), &opts).is_err());
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 0..12 {
        let prev = if i == 0 {
            "a".to_string()
        } else {
            format!("a{}", i - 1)
        };
        bomb.push_str(&format!("a{i}: &a{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
    }
    let started = std::time::Instant::now();
    assert!(load_str(&bomb, Path::new("bomb.yaml"), &opts).is_err());
    assert!(started.elapsed() < Duration::from_secs(10));
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
