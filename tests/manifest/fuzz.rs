//! No input panics the loader: generated and pathological documents end in an error or a
//! pod.

use super::*;

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
