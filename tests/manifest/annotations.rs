//! wasmhook's annotations (most specific wins, the exec policy only tightens) and where a
//! hook's module is found.

use super::*;

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
