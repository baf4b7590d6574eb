//! Faults, through the binary.

use super::*;

/// JSON lines of a run's stdout.
fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn events_of(lines: &[Value]) -> Vec<(String, String)> {
    lines
        .iter()
        .filter(|v| v.get("kind").is_none() && v.get("reason").is_some())
        .map(|v| {
            (
                v["reason"].as_str().unwrap_or("").to_string(),
                v["message"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn hooks_of(lines: &[Value]) -> Vec<Value> {
    lines
        .iter()
        .filter(|v| v["kind"] == "HookResult")
        .cloned()
        .collect()
}

fn sleeper(name: &str, extra_spec: &str, lifecycle: &str, annotations: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n{annotations}spec:\n{extra_spec}  \
         containers:\n  - name: app\n    image: busybox\n    command: [\"sleep\", \"3600\"]\n{lifecycle}"
    )
}

#[test]
fn fault_container_command_not_found() {
    let tmp = TempDir::new("notfound");
    for policy in ["Never", "Always"] {
        let m = tmp.path().join(format!("{policy}.yaml"));
        std::fs::write(
            &m,
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: nf\nspec:\n  restartPolicy: {policy}\n  \
                 containers:\n  - name: app\n    image: busybox\n    command: [\"/nonexistent/cmd\"]\n"
            ),
        )
        .unwrap();
        let (code, out, err, took) = wasmhook(
            tmp.path(),
            &[
                "run",
                "--output",
                "json",
                "--no-cache",
                "--backoff-scale",
                "0.02",
                "--stop-after",
                "3s",
                p(&m),
            ],
            Duration::from_secs(30),
        );
        let lines = json_lines(&out);
        let ev = events_of(&lines);
        let failed = ev
            .iter()
            .find(|(r, _)| r == "Failed")
            .unwrap_or_else(|| panic!("no Failed event: {ev:?}\n{err}"));
        assert!(failed.1.starts_with("Error: "), "{failed:?}");
        let backoffs = ev.iter().filter(|(r, _)| r == "BackOff").count();
        if policy == "Always" {
            assert!(
                backoffs >= 1,
                "no BackOff with restartPolicy Always: {ev:?}"
            );
        } else {
            assert_eq!(backoffs, 0, "{ev:?}");
        }
        assert!(lines.iter().any(|v| v["kind"] == "PodStatus"));
        emit(
            &format!("container command not found ({policy})"),
            "Failed \"Error: …\", restart per policy",
            &format!(
                "exit {code:?}; Failed: {}; BackOff events: {backoffs}",
                failed.1
            ),
            took.as_millis(),
        );
    }
}

#[test]
fn fault_container_exits_at_once() {
    let tmp = TempDir::new("exits");
    let m = tmp.path().join("pod.yaml");
    std::fs::write(
        &m,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: quick\nspec:\n  restartPolicy: Always\n  \
         containers:\n  - name: app\n    image: busybox\n    command: [\"false\"]\n",
    )
    .unwrap();
    let (code, out, _err, took) = wasmhook(
        tmp.path(),
        &[
            "run",
            "--output",
            "json",
            "--no-cache",
            "--backoff-scale",
            "0.02",
            "--stop-after",
            "3s",
            p(&m),
        ],
        Duration::from_secs(30),
    );
    let lines = json_lines(&out);
    let ev = events_of(&lines);
    let started = ev.iter().filter(|(r, _)| r == "Started").count();
    let backoffs = ev.iter().filter(|(r, _)| r == "BackOff").count();
    assert!(started >= 2 && backoffs >= 1, "{ev:?}");
    let st = lines.iter().find(|v| v["kind"] == "PodStatus").unwrap();
    let restarts = st["containers"][0]["restartCount"].as_u64().unwrap_or(0);
    assert!(restarts >= 1, "{st}");
    emit(
        "container exits at once (Always)",
        "restarts with back-off",
        &format!("exit {code:?}; Started x{started}, BackOff x{backoffs}, restartCount {restarts}"),
        took.as_millis(),
    );
}

/// A TCP server on 127.0.0.1 that accepts and then stalls (holds every connection, never
/// answers) or closes each connection as soon as the request arrived.
fn bad_server(stall: bool) -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            if stall {
                held.push(s);
            } else {
                let mut s = s;
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                drop(s);
            }
        }
    });
    port
}

#[test]
fn fault_hook_server_stalls_or_closes() {
    let tmp = TempDir::new("httpstall");
    for (name, stall) in [
        ("httpGet server stalls", true),
        ("httpGet server closes", false),
    ] {
        let port = bad_server(stall);
        let m = tmp.path().join("pod.yaml");
        std::fs::write(
            &m,
            sleeper(
                "web",
                "  terminationGracePeriodSeconds: 2\n  restartPolicy: Never\n",
                &format!(
                    "    lifecycle:\n      postStart:\n        httpGet:\n          host: 127.0.0.1\n          \
                     port: {port}\n          path: /hook\n"
                ),
                "  annotations:\n    wasmhook.dev/hook-timeout: 1s\n",
            ),
        )
        .unwrap();
        let (code, out, err, took) = wasmhook(
            tmp.path(),
            &[
                "run",
                "--output",
                "json",
                "--no-cache",
                "--stop-after",
                "15s",
                p(&m),
            ],
            Duration::from_secs(40),
        );
        let lines = json_lines(&out);
        let ev = events_of(&lines);
        assert!(
            ev.iter().any(|(r, _)| r == "FailedPostStartHook"),
            "{name}: {ev:?}\n{err}"
        );
        let hooks = hooks_of(&lines);
        let h = hooks
            .iter()
            .find(|h| h["hook"] == "postStart")
            .expect("HookResult");
        let msg = h["error"].as_str().unwrap_or("").to_string();
        let ms = h["durationMs"]
            .as_u64()
            .or_else(|| h["duration_ms"].as_u64())
            .map(u128::from)
            .unwrap_or(took.as_millis());
        assert!(
            took < Duration::from_secs(14),
            "{name}: the run took {took:?}"
        );
        emit(
            name,
            "FailedPostStartHook within the 1s hook timeout",
            &format!("exit {code:?}: {msg}"),
            ms,
        );
    }
}

fn hello_pod(name: &str) -> String {
    sleeper(
        name,
        "  terminationGracePeriodSeconds: 2\n",
        &format!(
            "    lifecycle:\n      postStart:\n        exec:\n          command: [{}]\n",
            serde_json::to_string(p(&wat("hello.wat"))).unwrap()
        ),
        "",
    )
}

#[test]
fn fault_unusable_or_corrupt_cache_dir() {
    let tmp = TempDir::new("cache");
    let m = tmp.path().join("pod.yaml");
    std::fs::write(&m, hello_pod("cached")).unwrap();
    let run = |cache: &Path| {
        wasmhook(
            tmp.path(),
            &[
                "run",
                "--output",
                "json",
                "--cache-dir",
                p(cache),
                "--stop-after",
                "1s",
                p(&m),
            ],
            Duration::from_secs(40),
        )
    };
    let check = |name: &str, r: (Option<i32>, String, String, Duration)| {
        let (code, out, err, took) = r;
        let lines = json_lines(&out);
        let hooks = hooks_of(&lines);
        assert!(
            hooks
                .iter()
                .any(|h| h["hook"] == "postStart" && h["error"].is_null()),
            "{name}: hook did not succeed\n{out}\n{err}"
        );
        assert_eq!(code, Some(0), "{name}\n{err}");
        assert!(
            !err.contains('\u{1b}'),
            "{name}: terminal escape codes in a captured stderr:\n{err}"
        );
        let warning = err
            .lines()
            .find(|l| l.contains("warning") || l.contains("cache"));
        emit(
            name,
            "run works, warning only",
            &format!(
                "exit 0, hook ok; stderr: {}",
                warning.unwrap_or("(nothing)")
            ),
            took.as_millis(),
        );
    };
    // A file where the cache directory should be.
    let file = tmp.path().join("cache-file");
    std::fs::write(&file, "not a directory").unwrap();
    check("cache dir is a file", run(&file));
    // A cache directory below a file (cannot be created).
    check("cache dir below a file", run(&file.join("sub")));
    // A corrupted cache: fill it, then overwrite every entry with garbage, add junk files.
    let cache = tmp.sub("cache");
    check("cache populated", run(&cache));
    let mut corrupted = 0;
    let mut stack = vec![cache.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let path = e.path();
            if path.is_dir() {
                std::fs::write(path.join("junk.cwasm"), b"\x7fELF garbage").unwrap();
                std::fs::write(path.join("zero.cwasm"), b"").unwrap();
                stack.push(path);
            } else {
                std::fs::write(&path, b"WASMHOOK? garbage garbage").unwrap();
                corrupted += 1;
            }
        }
    }
    assert!(corrupted >= 1, "nothing was cached in {}", cache.display());
    check("compile cache corrupted", run(&cache));
}

/// A running `wasmhook run` whose stdout is read as it comes.
struct Live {
    child: std::process::Child,
    out: Arc<std::sync::Mutex<String>>,
    err: std::thread::JoinHandle<String>,
    reader: std::thread::JoinHandle<()>,
}

fn live(tmp: &Path, manifest: &Path) -> Live {
    let mut child = Command::new(BIN)
        .args(["run", "--output", "json", "--no-cache", p(manifest)])
        .env("TMPDIR", tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let out = out.clone();
        let mut stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                out.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    let err = drain(child.stderr.take().unwrap());
    Live {
        child,
        out,
        err,
        reader,
    }
}

impl Live {
    fn wait_for(&mut self, needle: &str, limit: Duration) {
        let start = Instant::now();
        while !self.out.lock().unwrap().contains(needle) {
            let exited = self.child.try_wait().unwrap();
            assert!(
                start.elapsed() < limit && exited.is_none(),
                "never saw {needle} (exit: {exited:?})\n{}",
                self.out.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn sigint(&self) {
        let st = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// Wait for the exit (bounded); (code, stdout, stderr, time from `since`).
    fn finish(
        mut self,
        since: Instant,
        limit: Duration,
    ) -> (Option<i32>, String, String, Duration) {
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break Some(st);
            }
            if since.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let took = since.elapsed();
        self.reader.join().unwrap();
        let out = self.out.lock().unwrap().clone();
        let err = self.err.join().unwrap();
        assert!(
            status.is_some(),
            "did not exit within {limit:?}\n{out}\n{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        (status.unwrap().code(), out, err, took)
    }
}

#[test]
fn fault_sigint_during_post_start_sleep() {
    let tmp = TempDir::new("sigint-ps");
    let m = tmp.path().join("pod.yaml");
    std::fs::write(
        &m,
        sleeper(
            "slowstart",
            "  terminationGracePeriodSeconds: 40\n",
            "    lifecycle:\n      postStart:\n        sleep:\n          seconds: 30\n",
            "",
        ),
    )
    .unwrap();
    let mut run = live(tmp.path(), &m);
    run.wait_for("\"Started\"", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(300));
    // As the kubelet: a stop does not interrupt postStart, and its container is stopped only
    // after it; a second SIGINT kills at once, the hook with it.
    run.sigint();
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !run.out.lock().unwrap().contains("\"Killing\""),
        "the container was killed during its postStart"
    );
    let t = Instant::now();
    run.sigint();
    let (code, out, err, took) = run.finish(t, Duration::from_secs(20));
    let lines = json_lines(&out);
    let hooks = hooks_of(&lines);
    let h = hooks
        .iter()
        .find(|h| h["hook"] == "postStart")
        .unwrap_or_else(|| panic!("postStart HookResult lost\n{out}\n{err}"));
    let ev = events_of(&lines);
    assert!(
        lines.iter().any(|v| v["kind"] == "PodStatus"),
        "PodStatus lost"
    );
    assert!(
        took < Duration::from_secs(8),
        "stop took {took:?}, not prompt"
    );
    emit(
        "SIGINT, then a second one, during postStart sleep 30s",
        "postStart not interrupted by the stop; the kill is prompt, HookResult kept",
        &format!(
            "exit {code:?}; postStart: {}; events: {}",
            h["error"].as_str().unwrap_or("ok"),
            ev.iter()
                .map(|(r, _)| r.as_str())
                .collect::<Vec<_>>()
                .join(",")
        ),
        took.as_millis(),
    );
}

/// A preStop `sleep 30` (the API wants it below the grace, so grace 31); `timeout` bounds it.
fn pre_stop_sleeper(timeout: &str) -> String {
    sleeper(
        "slowstop",
        "  terminationGracePeriodSeconds: 31\n",
        "    lifecycle:\n      preStop:\n        sleep:\n          seconds: 30\n",
        &format!("  annotations:\n    wasmhook.dev/hook-timeout: {timeout}\n"),
    )
}

#[test]
fn fault_sigint_during_pre_stop_once_and_twice() {
    let tmp = TempDir::new("sigint-stop");
    // Once: the preStop sleep is bounded by its hook timeout (3 s).
    let m = tmp.path().join("once.yaml");
    std::fs::write(&m, pre_stop_sleeper("3s")).unwrap();
    let mut run = live(tmp.path(), &m);
    run.wait_for("\"Started\"", Duration::from_secs(20));
    let t = Instant::now();
    run.sigint();
    let (code, out, _err, took) = run.finish(t, Duration::from_secs(30));
    let lines = json_lines(&out);
    let h = hooks_of(&lines)
        .into_iter()
        .find(|h| h["hook"] == "preStop")
        .expect("preStop HookResult");
    assert!(took < Duration::from_secs(12), "{took:?}");
    emit(
        "SIGINT once during preStop sleep 30s (hook-timeout 3s)",
        "preStop cut at its timeout, then stop",
        &format!(
            "exit {code:?}; preStop: {}; events: {}",
            h["error"].as_str().unwrap_or("ok"),
            events_of(&lines)
                .iter()
                .map(|(r, _)| r.as_str())
                .collect::<Vec<_>>()
                .join(",")
        ),
        took.as_millis(),
    );

    // Twice: the second SIGINT kills at once, even with a 30 s grace.
    let m = tmp.path().join("twice.yaml");
    std::fs::write(&m, pre_stop_sleeper("60s")).unwrap();
    let mut run = live(tmp.path(), &m);
    run.wait_for("\"Started\"", Duration::from_secs(20));
    run.sigint();
    run.wait_for("\"Killing\"", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    run.sigint();
    let (code, out, err, took) = run.finish(t, Duration::from_secs(30));
    let lines = json_lines(&out);
    let h = hooks_of(&lines)
        .into_iter()
        .find(|h| h["hook"] == "preStop")
        .unwrap_or_else(|| panic!("preStop HookResult lost on the second SIGINT\n{out}\n{err}"));
    assert!(
        lines.iter().any(|v| v["kind"] == "PodStatus"),
        "PodStatus lost"
    );
    assert!(took < Duration::from_secs(5), "second SIGINT took {took:?}");
    emit(
        "second SIGINT during preStop (grace 31)",
        "kill at once, HookResult kept",
        &format!(
            "exit {code:?}; preStop: {}",
            h["error"].as_str().unwrap_or("ok")
        ),
        took.as_millis(),
    );
}

#[test]
fn fault_sleep_hook_is_bounded_by_its_timeout() {
    // The handlers' invariant (no hook outlives its timeout) holds for `sleep` too.
    let tmp = TempDir::new("sleep-timeout");
    let m = tmp.path().join("pod.yaml");
    std::fs::write(
        &m,
        sleeper(
            "sleepy",
            "  terminationGracePeriodSeconds: 40\n  restartPolicy: Never\n",
            "    lifecycle:\n      postStart:\n        sleep:\n          seconds: 30\n",
            "  annotations:\n    wasmhook.dev/hook-timeout: 1s\n",
        ),
    )
    .unwrap();
    let (code, out, err, took) = wasmhook(
        tmp.path(),
        &[
            "run",
            "--output",
            "json",
            "--no-cache",
            "--stop-after",
            "20s",
            p(&m),
        ],
        Duration::from_secs(40),
    );
    let lines = json_lines(&out);
    let ev = events_of(&lines);
    assert!(
        ev.iter().any(|(r, _)| r == "FailedPostStartHook"),
        "{ev:?}\n{err}"
    );
    let h = hooks_of(&lines)
        .into_iter()
        .find(|h| h["hook"] == "postStart")
        .expect("HookResult");
    let msg = h["error"].as_str().unwrap_or("").to_string();
    assert!(msg.contains("timed out after 1s"), "{msg}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    emit(
        "postStart sleep 30s, hook-timeout 1s",
        "FailedPostStartHook at 1s",
        &format!("exit {code:?}: {msg}"),
        took.as_millis(),
    );
}
