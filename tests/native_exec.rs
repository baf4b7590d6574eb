//! Exec handlers whose command is not a wasm module, through `wasmhook run` on the process
//! backend: they run natively in the container, as the kubelet runs every exec handler,
//! with its message formats and the hook deadlines; `--exec-policy wasm-only` and the
//! `wasmhook.dev/exec-policy` annotation refuse them at validation.
//!
//! On the process backend a container is a host process whose working directory holds its
//! volume mounts (`data/...`), so the commands here use relative paths.

mod common;

use std::process::Command;

use common::run::*;
use common::TempDir;

/// The Kubernetes documentation's lifecycle example (`lifecycle-events.yaml`), with its
/// postStart and preStop as written there (`/bin/sh -c ...`), made to run on the process
/// backend: the message goes to a volume, the app prints it, and a readiness probe that is
/// a shell command too.
fn lifecycle_pod(out: &std::path::Path) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: lifecycle-demo}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 5
  volumes:
  - {{name: share, emptyDir: {{}}}}
  - {{name: out, hostPath: {{path: "{out}"}}}}
  containers:
  - name: lifecycle-demo-container
    image: nginx
    command: ["sh", "-c", "trap 'exit 0' TERM; while [ ! -f usr/share/message ]; do sleep 0.05; done; cat usr/share/message; while true; do sleep 0.1; done"]
    volumeMounts:
    - {{name: share, mountPath: /usr/share}}
    - {{name: out, mountPath: /out}}
    readinessProbe:
      exec: {{command: ["sh", "-c", "test -f usr/share/message"]}}
      periodSeconds: 1
    lifecycle:
      postStart:
        exec:
          command: ["/bin/sh", "-c", "echo Hello from the postStart handler > usr/share/message"]
      preStop:
        exec:
          command: ["/bin/sh", "-c", "echo stopping; echo bye > out/prestop"]
"#,
        out = out.display()
    )
}

#[test]
fn shell_hooks_and_probes_run_natively_in_the_container() {
    let tmp = TempDir::new("native-lifecycle");
    let out = tmp.sub("out");
    std::fs::create_dir_all(&out).unwrap();
    let file = write(tmp.path(), "lifecycle.yaml", &lifecycle_pod(&out));
    let r = run(&tmp.sub("tmp"), &[&file, "--logs", "--stop-after", "3s"]);
    assert_eq!(r.code(), Some(0), "{}", r.dump());

    let post = r.hook("lifecycle-demo-container", "postStart");
    assert_eq!(
        (&post["handler"], &post["native"], &post["success"]),
        (&"exec".into(), &true.into(), &true.into()),
        "{}",
        r.dump()
    );
    // The container saw what the hook wrote, in its own volume.
    assert!(
        r.lines()
            .iter()
            .any(|l| l["kind"] == "Log" && l["line"] == "Hello from the postStart handler"),
        "{}",
        r.dump()
    );
    // The native readiness probe passed once the file was there.
    assert!(
        r.lines()
            .iter()
            .any(|l| l["kind"] == "Readiness" && l["ready"] == true),
        "{}",
        r.dump()
    );
    let pre = r.hook("lifecycle-demo-container", "preStop");
    assert_eq!(
        (&pre["native"], &pre["success"]),
        (&true.into(), &true.into())
    );
    assert_eq!(pre["output"], "stopping\n", "{}", r.dump());
    assert_eq!(
        std::fs::read_to_string(out.join("prestop")).unwrap(),
        "bye\n"
    );
    assert_eq!(r.pod_status("lifecycle-demo")["phase"], "Succeeded");
    assert!(
        !r.events().iter().any(|e| e["type"] == "Warning"),
        "{}",
        r.dump()
    );
}

#[test]
fn a_failing_native_hook_reads_as_the_kubelets() {
    let tmp = TempDir::new("native-fail");
    let manifest = r#"apiVersion: v1
kind: Pod
metadata:
  name: fail
  annotations: {wasmhook.dev/hook-timeout.slow.postStart: 1s}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"]
    lifecycle:
      postStart:
        exec: {command: ["sh", "-c", "echo out; echo oops >&2; exit 3"]}
  - name: slow
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"]
    lifecycle:
      postStart:
        exec: {command: ["sleep", "30"]}
"#;
    let file = write(tmp.path(), "fail.yaml", manifest);
    let r = run(&tmp.sub("tmp"), &[&file, "--stop-after", "5s"]);

    let app = r.hook("app", "postStart");
    assert_eq!(app["native"], true, "{}", r.dump());
    let err = s(&app["error"]);
    assert!(
        err.starts_with(r#"Exec lifecycle hook ([sh -c echo out; echo oops >&2; exit 3]) for Container "app" in Pod "fail_default("#),
        "{err}"
    );
    assert!(
        err.ends_with(
            r#" failed - error: command 'sh -c echo out; echo oops >&2; exit 3' exited with 3: oops
, message: "out\noops\n""#
        ),
        "{err}"
    );
    // Past its deadline the command is killed, and the message says so.
    let slow = r.hook("slow", "postStart");
    assert!(
        s(&slow["error"]).contains("error: command 'sleep 30' stopped: timed out after 1s"),
        "{}",
        r.dump()
    );
    for c in ["app", "slow"] {
        assert!(
            r.events()
                .iter()
                .any(|e| e["reason"] == "FailedPostStartHook" && e["container"] == c),
            "{c}: {}",
            r.dump()
        );
    }
    // Nothing of the killed `sleep 30` is left.
    let left = Command::new("pgrep")
        .args(["-f", "^sleep 30$"])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&left.stdout)
    );
}

#[test]
fn wasm_only_refuses_native_commands_at_validation() {
    let tmp = TempDir::new("native-policy");
    let out = tmp.sub("out");
    std::fs::create_dir_all(&out).unwrap();
    let plain = lifecycle_pod(&out);
    let file = write(tmp.path(), "lifecycle.yaml", &plain);
    let annotated = write(
        tmp.path(),
        "annotated.yaml",
        &plain.replace(
            "metadata: {name: lifecycle-demo}",
            "metadata:\n  name: lifecycle-demo\n  annotations: {wasmhook.dev/exec-policy: wasm-only}",
        ),
    );
    let validate = |args: &[&str]| {
        Command::new(BIN)
            .args(["validate"])
            .args(args)
            .output()
            .unwrap()
    };
    let ok = validate(&[&file]);
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");

    let field = "spec.containers[0].lifecycle.postStart.exec.command[0]: Forbidden: \"/bin/sh\" is not a wasm module and the exec policy is wasm-only";
    for args in [
        vec!["--exec-policy", "wasm-only", file.as_str()],
        vec![annotated.as_str()],
        // A pod's annotation is not loosened by the flag's default.
        vec!["--exec-policy", "auto", annotated.as_str()],
    ] {
        let o = validate(&args);
        let text = String::from_utf8_lossy(&o.stdout);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {text}");
        assert!(text.contains(field), "{args:?}: {text}");
        // The probe and the preStop are named too, each at its own field.
        for path in [
            "readinessProbe.exec.command[0]",
            "lifecycle.preStop.exec.command[0]",
        ] {
            assert!(text.contains(path), "{args:?}: {text}");
        }
        assert!(text.contains("--exec-policy auto"), "{text}");
    }
    // `run` refuses before anything starts.
    let r = run(&tmp.sub("tmp"), &["--exec-policy", "wasm-only", &file]);
    assert_eq!(r.code(), Some(2), "{}", r.dump());
    assert!(r.stderr.contains(field), "{}", r.dump());
    assert!(r.events().is_empty(), "{}", r.dump());
}

#[test]
fn the_native_hooks_example() {
    let tmp = TempDir::new("native-example");
    let r = run(
        &tmp.sub("tmp"),
        &[
            path_str(&example("native-hooks.yaml")),
            "--logs",
            "--stop-after",
            "3s",
        ],
    );
    assert_eq!(r.code(), Some(0), "{}", r.dump());
    assert!(
        r.lines()
            .iter()
            .any(|l| l["kind"] == "Log" && l["line"] == "Hello from the postStart handler"),
        "{}",
        r.dump()
    );
    let pre = r.hook("lifecycle-demo-container", "preStop");
    assert_eq!(
        (&pre["native"], &pre["success"]),
        (&true.into(), &true.into())
    );
    assert_eq!(pre["output"], "stopping after 5 words\n", "{}", r.dump());
}
