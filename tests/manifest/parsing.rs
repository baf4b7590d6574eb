//! Valid manifests parse and default as the API server defaults them; syntax and type
//! errors say where.

use super::*;

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
