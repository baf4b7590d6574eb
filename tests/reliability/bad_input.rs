//! Bad input: fuzzed modules, broken manifests.

use super::*;

/// Tight limits for fuzzed modules: whatever they do, a call ends in about 200 ms.
fn fuzz_limits() -> Limits {
    Limits {
        timeout: Duration::from_millis(200),
        fuel: Some(5_000_000),
        max_memory: 16 << 20,
        max_output: 4096,
        ..Limits::default()
    }
}

/// Load `bytes`; if they load, run them. Returns the outcome's name. Never panics unless the
/// runtime does (which proptest then reports with the input).
fn load_and_run(
    rt: &HookRuntime,
    tokio: &tokio::runtime::Runtime,
    bytes: &[u8],
    errors: &std::sync::Mutex<BTreeMap<String, usize>>,
) -> String {
    match rt.load_bytes("fuzz.wasm", bytes) {
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains("fuzz.wasm"),
                "error does not name the module: {msg}"
            );
            // Group by the message up to the first digit (offsets, sizes vary).
            let key: String = msg
                .chars()
                .map(|c| match c {
                    '0'..='9' => '#',
                    '\n' => ' ',
                    c => c,
                })
                .take(220)
                .collect();
            *errors.lock().unwrap().entry(key).or_default() += 1;
            "load-error".into()
        }
        Ok(m) => {
            let out = tokio.block_on(rt.run(
                &m,
                Invocation {
                    args: vec!["fuzz.wasm".into()],
                    limits: fuzz_limits(),
                    ..Invocation::default()
                },
            ));
            assert!(
                out.duration < Duration::from_secs(10),
                "a 200 ms call took {:?}",
                out.duration
            );
            out.status.name().to_string()
        }
    }
}

fn fuzz_runtime() -> (HookRuntime, tokio::runtime::Runtime) {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    (runtime(None), tokio)
}

/// Run `cases` inputs of `strategy` through [`load_and_run`]; print the tally.
fn fuzz<S: Strategy<Value = Vec<u8>>>(name: &str, cases: u32, strategy: S) {
    let (rt, tokio) = fuzz_runtime();
    let tally = std::sync::Mutex::new(BTreeMap::<String, usize>::new());
    let errors = std::sync::Mutex::new(BTreeMap::<String, usize>::new());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&strategy, |bytes| {
        let outcome = load_and_run(&rt, &tokio, &bytes, &errors);
        *tally.lock().unwrap().entry(outcome).or_default() += 1;
        Ok(())
    });
    let tally = tally.into_inner().unwrap();
    let total: usize = tally.values().sum();
    let summary: Vec<String> = tally.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("FUZZ|{name}|{total}|{}", summary.join(" "));
    let mut errors: Vec<_> = errors.into_inner().unwrap().into_iter().collect();
    errors.sort_by_key(|e| std::cmp::Reverse(e.1));
    for (msg, n) in errors.iter().take(3) {
        println!("FUZZ-ERROR|{name}|{n}|{}", msg.replace('|', " "));
    }
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
}

/// Every wasm binary we have: the WAT fixtures compiled, and the example hooks.
fn seed_modules() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for dir in [
        "tests/fixtures/wat",
        "tests/fixtures/hostile",
        "examples/hooks/bin",
    ] {
        let mut entries: Vec<_> = std::fs::read_dir(repo().join(dir))
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for path in entries {
            match path.extension().and_then(|e| e.to_str()) {
                Some("wat") => seeds.push(wat::parse_file(&path).expect("fixture parses")),
                Some("wasm") => seeds.push(std::fs::read(&path).unwrap()),
                _ => {}
            }
        }
    }
    assert!(seeds.len() >= 10);
    seeds
}

#[test]
fn fuzz_arbitrary_bytes_never_crash_the_loader() {
    // Half the inputs start with the wasm magic and version, so the parser gets past them;
    // some look like a precompiled ELF, which must be refused (allow_precompiled is off).
    let magic = proptest::collection::vec(any::<u8>(), 0..2048).prop_map(|mut v| {
        let mut out = b"\0asm\x01\0\0\0".to_vec();
        out.append(&mut v);
        out
    });
    let elf = proptest::collection::vec(any::<u8>(), 0..512).prop_map(|mut v| {
        let mut out = b"\x7fELF\x02\x01\x01\0".to_vec();
        out.append(&mut v);
        out
    });
    let strategy = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..2048),
        magic,
        elf,
        "\\PC{0,300}".prop_map(|s| format!("(module {s})").into_bytes()),
    ];
    fuzz("arbitrary bytes", 1500, strategy);
}

#[test]
fn fuzz_mutated_valid_modules() {
    let seeds = seed_modules();
    let n = seeds.len();
    let strategy = (
        0..n,
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..8),
    )
        .prop_map(move |(i, edits)| {
            let mut m = seeds[i].clone();
            for (at, byte, op) in edits {
                if m.is_empty() {
                    break;
                }
                let at = at.index(m.len());
                match op {
                    0 => m[at] = byte,
                    1 => m[at] ^= 1 << (byte % 8),
                    2 => m.truncate(at.max(8)),
                    _ => m.insert(at, byte),
                }
            }
            m
        });
    fuzz("mutated valid modules", 800, strategy);
}

#[test]
fn fuzz_generated_valid_modules_run_to_a_status() {
    // wasm-smith modules with exactly one export, `_start: [] -> []`, no imports, and the
    // proposals wasmtime is built without turned off: they must all load, and every call
    // must end in a status within the limits.
    let exports = wat::parse_str(r#"(module (func (export "_start")))"#).unwrap();
    let strategy = proptest::collection::vec(any::<u8>(), 64..4096).prop_map(move |seed| {
        let config = wasm_smith::Config {
            exports: Some(exports.clone()),
            max_imports: 0,
            gc_enabled: false,
            reference_types_enabled: false,
            exceptions_enabled: false,
            threads_enabled: false,
            wide_arithmetic_enabled: false,
            compact_imports_enabled: false,
            max_memory32_bytes: 32 << 20,
            ..wasm_smith::Config::default()
        };
        let mut u = arbitrary::Unstructured::new(&seed);
        match wasm_smith::Module::new(config, &mut u) {
            Ok(m) => m.to_bytes(),
            Err(_) => wat::parse_str(r#"(module (func (export "_start")))"#).unwrap(),
        }
    });
    fuzz("wasm-smith valid modules", 1000, strategy);
}

fn pod_with_hook(name: &str, module: &str, annotations: &[(&str, &str)]) -> String {
    let ann: String = annotations
        .iter()
        .map(|(k, v)| format!("    {k}: {}\n", serde_json::to_string(v).unwrap()))
        .collect();
    let ann = if ann.is_empty() {
        String::new()
    } else {
        format!("  annotations:\n{ann}")
    };
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n{ann}spec:\n  containers:\n  \
         - name: app\n    image: busybox\n    command: [\"sleep\", \"3600\"]\n    lifecycle:\n      \
         postStart:\n        exec:\n          command: [{}]\n",
        serde_json::to_string(module).unwrap()
    )
}

#[test]
fn bad_manifests_fail_clearly_naming_the_file() {
    let tmp = TempDir::new("badinput");
    let d = tmp.path();
    std::fs::write(d.join("garbage.wasm"), b"\0asm\x01\0\0\0\x01\xff\xff\xff").unwrap();
    std::fs::write(d.join("empty.wasm"), b"").unwrap();
    std::fs::write(
        d.join("syntax.wat"),
        b"(module (func (export \"_start\") (i32.add)))",
    )
    .unwrap();
    std::fs::write(d.join("elf.cwasm"), b"\x7fELF\x02\x01\x01\0garbage").unwrap();
    std::fs::create_dir(d.join("dir.wasm")).unwrap();
    let fifo = d.join("fifo.wasm");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    std::os::unix::fs::symlink(d.join("nowhere.wasm"), d.join("dangling.wasm")).unwrap();
    let hello = p(&wat("hello.wat")).to_string();
    let nostart = p(&wat("nostart.wat")).to_string();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "missing module",
            pod_with_hook("a", "missing.wasm", &[]),
            "missing.wasm",
        ),
        (
            "directory as module",
            pod_with_hook("a", "dir.wasm", &[]),
            "dir.wasm",
        ),
        (
            "FIFO as module",
            pod_with_hook("a", "fifo.wasm", &[]),
            "fifo.wasm",
        ),
        (
            "dangling symlink as module",
            pod_with_hook("a", "dangling.wasm", &[]),
            "dangling.wasm",
        ),
        (
            "module fails to compile",
            pod_with_hook("a", "garbage.wasm", &[]),
            "garbage.wasm",
        ),
        (
            "empty module file",
            pod_with_hook("a", "empty.wasm", &[]),
            "empty.wasm",
        ),
        (
            "WAT that does not type-check",
            pod_with_hook("a", "syntax.wat", &[]),
            "syntax.wat",
        ),
        (
            "precompiled .cwasm not allowed",
            pod_with_hook("a", "elf.cwasm", &[]),
            "elf.cwasm",
        ),
        (
            "module without _start",
            pod_with_hook("a", &nostart, &[]),
            "nostart.wat",
        ),
        (
            "negative hook-timeout",
            pod_with_hook("a", &hello, &[("wasmhook.dev/hook-timeout", "-1s")]),
            "wasmhook.dev/hook-timeout",
        ),
        (
            "hook-timeout not a duration",
            pod_with_hook("a", &hello, &[("wasmhook.dev/hook-timeout", "forever")]),
            "wasmhook.dev/hook-timeout",
        ),
        (
            "hook-fuel 0",
            pod_with_hook("a", &hello, &[("wasmhook.dev/hook-fuel", "0")]),
            "wasmhook.dev/hook-fuel",
        ),
        (
            "hook-fuel overflow",
            pod_with_hook(
                "a",
                &hello,
                &[("wasmhook.dev/hook-fuel", "99999999999999999999999")],
            ),
            "wasmhook.dev/hook-fuel",
        ),
        (
            "hook-network allow-list entry malformed",
            pod_with_hook(
                "a",
                &hello,
                &[("wasmhook.dev/hook-network", "127.0.0.1:8080,10.0.0.1/8")],
            ),
            "wasmhook.dev/hook-network",
        ),
        (
            "hook-max-memory garbage",
            pod_with_hook("a", &hello, &[("wasmhook.dev/hook-max-memory", "lots")]),
            "wasmhook.dev/hook-max-memory",
        ),
        (
            "hook-max-memory huge",
            pod_with_hook(
                "a",
                &hello,
                &[("wasmhook.dev/hook-max-memory", "99999999Ei")],
            ),
            "wasmhook.dev/hook-max-memory",
        ),
        (
            "misspelt annotation key",
            pod_with_hook("a", &hello, &[("wasmhook.dev/hook-tiemout", "1s")]),
            "wasmhook.dev/hook-tiemout",
        ),
        (
            "annotation for unknown container",
            pod_with_hook("a", &hello, &[("wasmhook.dev/hook-timeout.nope", "1s")]),
            "hook-timeout.nope",
        ),
        (
            "bad hook kind suffix",
            pod_with_hook(
                "a",
                &hello,
                &[("wasmhook.dev/hook-timeout.app.onStart", "1s")],
            ),
            "onStart",
        ),
        ("not YAML", "{{{{ : : ]]".to_string(), "pod.yaml"),
        (
            "binary garbage manifest",
            "\u{0}\u{1}\u{2}\u{fffd}".to_string(),
            "pod.yaml",
        ),
    ];
    for (name, yaml, names) in cases {
        let manifest = d.join("pod.yaml");
        std::fs::write(&manifest, &yaml).unwrap();
        for cmd in ["validate", "run"] {
            let args: Vec<&str> = match cmd {
                "validate" => vec!["validate", p(&manifest)],
                _ => vec!["run", "--no-cache", "--stop-after", "1s", p(&manifest)],
            };
            let (code, out, err, took) = wasmhook(d, &args, Duration::from_secs(30));
            // `validate` reports on stdout, `run` on stderr.
            let err = format!("{out}{err}");
            let first = err.lines().find(|l| l.contains(names)).unwrap_or("");
            let ok = code == Some(2) && !first.is_empty();
            if cmd == "validate" {
                emit(
                    &format!("bad input: {name}"),
                    "exit 2, error names the file/key",
                    &format!(
                        "exit {}: {}",
                        code.map_or("signal".into(), |c| c.to_string()),
                        if first.is_empty() { err.trim() } else { first }
                    ),
                    took.as_millis(),
                );
            }
            assert!(ok, "{name} ({cmd}): exit {code:?}, stderr:\n{err}");
        }
    }
}
