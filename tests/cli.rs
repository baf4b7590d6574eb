//! The `wasmhook` binary: `hook run`, `compile` and `validate`, as a user runs them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn wat(name: &str) -> PathBuf {
    root().join("tests/fixtures/wat").join(name)
}

fn wasmhook(args: &[&str], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wasmhook"))
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .output()
        .expect("wasmhook runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn hook_run_exit_codes_follow_timeout_and_shells() {
    let cache = tempfile::tempdir().unwrap();
    let c = cache.path();
    let ok = wasmhook(&["hook", "run", wat("hello.wat").to_str().unwrap()], c);
    assert_eq!(ok.status.code(), Some(0));
    assert_eq!(text(&ok.stdout), "out 1\nerr\nout 2\n");

    let three = wasmhook(&["hook", "run", wat("exit3.wat").to_str().unwrap()], c);
    assert_eq!(three.status.code(), Some(3));
    assert!(
        text(&three.stderr).contains("exited with code 3"),
        "{}",
        text(&three.stderr)
    );

    let timeout = wasmhook(
        &[
            "hook",
            "run",
            "--timeout",
            "200ms",
            wat("loop.wat").to_str().unwrap(),
        ],
        c,
    );
    assert_eq!(timeout.status.code(), Some(124));
    assert!(text(&timeout.stderr).contains("timed out after 200ms"));

    let fuel = wasmhook(
        &[
            "hook",
            "run",
            "--fuel",
            "1000000",
            wat("loop.wat").to_str().unwrap(),
        ],
        c,
    );
    assert_eq!(fuel.status.code(), Some(125));
    assert!(text(&fuel.stderr).contains("fuel exhausted (budget 1000000)"));

    let memory = wasmhook(
        &[
            "hook",
            "run",
            "--max-memory",
            "8Mi",
            wat("membomb.wat").to_str().unwrap(),
        ],
        c,
    );
    assert_eq!(memory.status.code(), Some(125));
    assert!(text(&memory.stderr).contains("memory limit of 8 MiB exceeded"));

    let invalid = wasmhook(&["hook", "run", wat("nostart.wat").to_str().unwrap()], c);
    assert_eq!(invalid.status.code(), Some(126));
    let missing = wasmhook(&["hook", "run", "/nonexistent/hook.wasm"], c);
    assert_eq!(missing.status.code(), Some(127));
    assert!(text(&missing.stderr).contains("/nonexistent/hook.wasm: module not found"));
}

/// A hook stopped at its timeout inside a host call that never returns (the open of a FIFO
/// without a reader, on a blocking thread) is reported, and `hook run` then exits: it does
/// not wait for that thread.
#[test]
fn hook_run_exits_at_the_timeout_of_a_host_call_that_never_returns() {
    use std::time::{Duration, Instant};
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        dir.path().join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let mut child = spawn_piped(
        &[
            "hook",
            "run",
            "--timeout",
            "300ms",
            "--dir",
            dir.path().to_str().unwrap(),
            wat("fifo.wat").to_str().unwrap(),
            "fifo",
        ],
        cache.path(),
    );
    // Generous: a compile of the module plus the timeout takes well under a second here.
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("hook run still running 30 s after its hook timed out at 300ms");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(124), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("timed out after 300ms"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn hook_run_passes_args_dirs_env_and_prints_json() {
    let cache = tempfile::tempdir().unwrap();
    let vol = tempfile::tempdir().unwrap();
    let dir = format!("{}::/data", vol.path().display());
    let out = wasmhook(
        &[
            "hook",
            "run",
            "--dir",
            &dir,
            "--env",
            "WASMHOOK_POD=p",
            "--env",
            "WASMHOOK_CONTAINER=c",
            "--env",
            "WASMHOOK_HOOK=postStart",
            root()
                .join("examples/hooks/bin/write-message.wasm")
                .to_str()
                .unwrap(),
            "/data/msg.txt",
            "hello",
            "--not-a-flag",
        ],
        cache.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let written = std::fs::read_to_string(vol.path().join("msg.txt")).unwrap();
    assert_eq!(written, "hello --not-a-flag\n");

    let json = wasmhook(
        &[
            "hook",
            "run",
            "--output",
            "json",
            wat("exit3.wat").to_str().unwrap(),
        ],
        cache.path(),
    );
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["status"], "exited");
    assert_eq!(v["exitCode"], 3);
    assert_eq!(v["reason"], "exited with code 3");
    assert_eq!(v["output"], "not ready yet\n");
    assert_eq!(v["kind"], "p1-command");
    assert_eq!(json.status.code(), Some(3));

    // Read-only directories are honoured.
    let ro = format!("{}::/data:ro", vol.path().display());
    let out = wasmhook(
        &[
            "hook",
            "run",
            "--dir",
            &ro,
            wat("open.wat").to_str().unwrap(),
            "new.txt",
        ],
        cache.path(),
    );
    assert_ne!(out.status.code(), Some(0));
    assert!(!vol.path().join("new.txt").exists());
}

#[test]
fn compile_output_runs_only_with_allow_precompiled() {
    let cache = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let cwasm = out_dir.path().join("exit3.cwasm");
    let compiled = wasmhook(
        &[
            "compile",
            wat("exit3.wat").to_str().unwrap(),
            "-o",
            cwasm.to_str().unwrap(),
        ],
        cache.path(),
    );
    assert_eq!(
        compiled.status.code(),
        Some(0),
        "{}",
        text(&compiled.stderr)
    );
    let refused = wasmhook(&["hook", "run", cwasm.to_str().unwrap()], cache.path());
    assert_eq!(refused.status.code(), Some(126));
    assert!(text(&refused.stderr).contains("--allow-precompiled"));
    let ran = wasmhook(
        &[
            "hook",
            "run",
            "--allow-precompiled",
            cwasm.to_str().unwrap(),
        ],
        cache.path(),
    );
    assert_eq!(ran.status.code(), Some(3), "{}", text(&ran.stderr));
}

#[test]
fn validate_reports_valid_pods_and_field_path_errors() {
    let cache = tempfile::tempdir().unwrap();
    let good = root().join("examples/pods/init-sidecar-app.yaml");
    let out = wasmhook(&["validate", good.to_str().unwrap()], cache.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert_eq!(
        text(&out.stdout),
        format!("{}: pod \"init-demo\" is valid\n", good.display())
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - name: app\n    image: x\n    command: [sleep, '1']\n    lifecycle:\n      postStart:\n        httpGet: {port: 70000}\n      preStop:\n        exec: {command: [missing.wasm]}\n",
    )
    .unwrap();
    let out = wasmhook(&["validate", bad.to_str().unwrap()], cache.path());
    assert_eq!(out.status.code(), Some(2));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "{}: pod \"web\": spec.containers[0].lifecycle.postStart.httpGet.port: Invalid value: 70000: must be between 1 and 65535, inclusive",
            bad.display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("spec.containers[0].lifecycle.preStop.exec.command[0]"),
        "{stdout}"
    );

    // `run` refuses the same file and starts nothing.
    let run = wasmhook(&["run", bad.to_str().unwrap()], cache.path());
    assert_eq!(run.status.code(), Some(2));
    assert!(text(&run.stderr).contains("must be between 1 and 65535"));
}

/// Run `wasmhook` with stdout a pipe whose read end is closed before it writes (as
/// `wasmhook ... | head -0` would), and return the exit code and stderr. Callers make it
/// print more than a pipe's buffer (64 KiB), so at least one write happens after the close
/// even if the child started writing first.
fn with_stdout_closed(args: &[&str], cache: &Path) -> (Option<i32>, String) {
    use std::io::Read;
    let mut child = spawn_piped(args, cache);
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (child.wait().unwrap().code(), stderr)
}

/// `wasmhook --cache-dir CACHE ARGS...` with stdout and stderr pipes, for the caller to close.
fn spawn_piped(args: &[&str], cache: &Path) -> std::process::Child {
    use std::process::Stdio;
    Command::new(env!("CARGO_BIN_EXE_wasmhook"))
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wasmhook runs")
}

fn assert_quiet_end(what: &str, (code, stderr): (Option<i32>, String)) {
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{what}: {stderr}"
    );
    assert_eq!(code, Some(0), "{what}: {stderr}");
}

#[test]
fn validate_ends_quietly_when_stdout_is_closed() {
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pods = dir.path().join("pods.yaml");
    // 600 pods with long names: ~150 KiB of "is valid" lines.
    let name = "p".repeat(200);
    let manifest: String = (0..600)
        .map(|i| {
            format!(
                "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}{i}}}\nspec:\n  \
                 containers: [{{name: app, image: x, command: [sleep, '1']}}]\n"
            )
        })
        .collect();
    std::fs::write(&pods, manifest).unwrap();
    let all = wasmhook(&["validate", pods.to_str().unwrap()], cache.path());
    assert_eq!(all.status.code(), Some(0), "{}", text(&all.stdout));
    assert!(all.stdout.len() > 128 << 10, "{}", all.stdout.len());
    assert_quiet_end(
        "validate",
        with_stdout_closed(&["validate", pods.to_str().unwrap()], cache.path()),
    );
}

#[test]
fn hook_run_ends_quietly_when_stdout_is_closed() {
    let cache = tempfile::tempdir().unwrap();
    // flood.wat prints far more than the 1 MiB of output kept, so 1 MiB is printed.
    let flood = wat("flood.wat");
    for output in ["text", "json"] {
        assert_quiet_end(
            output,
            with_stdout_closed(
                &["hook", "run", "--output", output, flood.to_str().unwrap()],
                cache.path(),
            ),
        );
    }
}

#[test]
fn compile_prints_nothing_to_stdout_and_survives_closed_pipes() {
    let cache = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let cwasm = out_dir.path().join("hello.cwasm");
    let (module, out) = (wat("hello.wat"), cwasm.to_str().unwrap().to_owned());
    let args = ["compile", module.to_str().unwrap(), "-o", &out];
    let printed = wasmhook(&args, cache.path());
    assert_eq!(printed.status.code(), Some(0), "{}", text(&printed.stderr));
    assert!(printed.stdout.is_empty());
    assert!(text(&printed.stderr).starts_with("wasmhook: wrote "));
    // Its note goes to stderr: closed too, it is not worth a panic.
    std::fs::remove_file(&cwasm).unwrap();
    let mut child = spawn_piped(&args, cache.path());
    drop(child.stdout.take());
    drop(child.stderr.take());
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert!(cwasm.exists());
}

/// Each subcommand's help starts with its own description and lists its own flags, also
/// those of the structs flattened into it: subcommands are built lazily (`defer`), which
/// changes the order clap applies their parts in.
#[test]
fn each_subcommand_help_describes_that_subcommand() {
    let cache = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str, &[&str])] = &[
        (
            &["run"],
            "Run Pod manifests",
            &[
                "--backend",
                "--max-concurrent-hooks",
                "--allow-unknown-fields",
                "--timeout",
            ],
        ),
        (
            &["validate"],
            "Check Pod manifests",
            &["--allow-unknown-fields"],
        ),
        (&["hook"], "Work with single hooks", &["run"]),
        (
            &["hook", "run"],
            "Run one hook module",
            &["--dir", "--fuel", "--hook-network"],
        ),
        (&["compile"], "Precompile a hook module", &["--output"]),
        // `cri` raises the output cap to the CRI's own limit.
        (
            &["cri"],
            "CRI proxy for Kubernetes nodes",
            &["--listen", "--fuel", "[default: 16Mi]"],
        ),
    ];
    for (args, about, flags) in cases {
        let out = wasmhook(&[*args, &["--help"][..]].concat(), cache.path());
        let help = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            help.starts_with(about),
            "{args:?} --help starts with {about:?}:\n{help}"
        );
        for flag in *flags {
            assert!(help.contains(flag), "{args:?} --help lists {flag}:\n{help}");
        }
    }
}
