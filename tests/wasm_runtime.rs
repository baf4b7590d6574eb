//! The wasm hook runtime with real modules: WAT fixtures under `tests/fixtures/wat/` and the
//! example hooks under `examples/hooks/bin/`.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use wasmhook::events::PodRef;
use wasmhook::handlers::HookKind;
use wasmhook::hook::HookNetwork;
use wasmhook::wasm::{
    Allocator, ExecStatus, HookIdentity, HookModule, HookRuntime, Invocation, Limits, LoadError,
    ModuleKind, Preopen, RuntimeConfig,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/wat")
        .join(name)
}

fn runtime_with(cache: Option<&Path>, allow_precompiled: bool) -> HookRuntime {
    HookRuntime::new(RuntimeConfig {
        allocator: Allocator::Pooling { max_instances: 256 },
        cache_dir: cache.map(Path::to_owned),
        allow_precompiled,
        default_limits: Limits::default(),
    })
    .expect("runtime")
}

fn runtime() -> HookRuntime {
    runtime_with(None, false)
}

fn load(rt: &HookRuntime, name: &str) -> HookModule {
    rt.load_file(&fixture(name)).expect("fixture loads")
}

fn inv(args: &[&str]) -> Invocation {
    Invocation {
        args: args.iter().map(|s| s.to_string()).collect(),
        limits: Limits {
            timeout: Duration::from_secs(20),
            ..Limits::default()
        },
        ..Invocation::default()
    }
}

/// After a hostile hook, the runtime still runs a well-behaved one.
async fn still_serving(rt: &HookRuntime) {
    let out = rt.run(&load(rt, "hello.wat"), inv(&["hello.wasm"])).await;
    assert_eq!(out.status, ExecStatus::Success);
    assert_eq!(out.output.combined, b"out 1\nerr\nout 2\n");
}

#[tokio::test]
async fn success_and_exit_codes() {
    let rt = runtime();
    let ok = rt.run(&load(&rt, "noop.wat"), inv(&["noop.wasm"])).await;
    assert_eq!(ok.status, ExecStatus::Success);
    assert_eq!(ok.exit_code(), Some(0));

    let three = rt.run(&load(&rt, "exit3.wat"), inv(&["exit3.wasm"])).await;
    assert_eq!(three.status, ExecStatus::Exited(3));
    assert_eq!(three.exit_code(), Some(3));
    assert_eq!(three.status.to_string(), "exited with code 3");
    assert_eq!(three.output.stderr, b"not ready yet\n");
}

// A pooled slot is reset between calls: `dirty.wat` exits 1 unless its memory is pristine
// (zero, its data segment intact, in the page kept resident, the page past it and a grown
// page) and then dirties all of it. Calls one after another reuse the same warm slot; calls
// at once spread over several.
#[tokio::test]
async fn a_reused_pool_slot_starts_from_pristine_memory() {
    let rt = runtime();
    let dirty = load(&rt, "dirty.wat");
    for i in 0..20 {
        let out = rt.run(&dirty, inv(&["dirty.wasm"])).await;
        assert_eq!(out.status, ExecStatus::Success, "sequential call {i}");
    }
    for round in 0..5 {
        let calls = (0..16).map(|_| rt.run(&dirty, inv(&["dirty.wasm"])));
        for out in futures::future::join_all(calls).await {
            assert_eq!(out.status, ExecStatus::Success, "round {round}");
        }
    }
}

#[tokio::test]
async fn stdout_and_stderr_interleave_in_write_order() {
    let rt = runtime();
    let out = rt.run(&load(&rt, "hello.wat"), inv(&["hello.wasm"])).await;
    assert_eq!(out.output.combined, b"out 1\nerr\nout 2\n");
    assert_eq!(out.output.stderr, b"err\n");
    assert!(!out.truncated());
}

#[tokio::test]
async fn argv_and_env_are_exactly_what_was_given() {
    let rt = runtime();
    let mut call = inv(&["dump.wasm", "a b", "--flag"]);
    call.env = vec![
        ("GREETING".into(), "hello world".into()),
        ("WASMHOOK_POD".into(), "spoofed".into()),
    ];
    call.identity = Some(HookIdentity {
        pod: PodRef {
            name: "web".into(),
            namespace: "default".into(),
            uid: "u1".into(),
        },
        container: "app".into(),
        kind: HookKind::PreStop,
    });
    let out = rt.run(&load(&rt, "dump.wat"), call).await;
    assert_eq!(out.status, ExecStatus::Success);
    let split = out.output.combined.iter().position(|b| *b == 0xff).unwrap();
    let (args, env) = (
        &out.output.combined[..split],
        &out.output.combined[split + 1..],
    );
    assert_eq!(args, b"dump.wasm\0a b\0--flag\0");
    let env: Vec<&str> = std::str::from_utf8(env)
        .unwrap()
        .split('\0')
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(
        env,
        [
            "GREETING=hello world",
            "WASMHOOK_POD=web",
            "WASMHOOK_NAMESPACE=default",
            "WASMHOOK_CONTAINER=app",
            "WASMHOOK_HOOK=preStop"
        ],
        "the host's environment must not leak, and WASMHOOK_* win clashes"
    );
}

fn preopen(dir: &Path, read_only: bool) -> Preopen {
    Preopen {
        host: dir.to_owned(),
        guest: "/data".into(),
        read_only,
        volume: Some("data".into()),
    }
}

#[tokio::test]
async fn writes_into_a_preopen_and_honours_read_only() {
    let rt = runtime();
    let module = load(&rt, "open.wat");
    let dir = tempfile::tempdir().unwrap();

    let mut call = inv(&["open.wasm", "message.txt"]);
    call.preopens = vec![preopen(dir.path(), false)];
    let out = rt.run(&module, call).await;
    assert_eq!(out.status, ExecStatus::Success, "{:?}", out);
    assert_eq!(
        std::fs::read(dir.path().join("message.txt")).unwrap(),
        b"ok\n"
    );

    let mut call = inv(&["open.wasm", "other.txt"]);
    call.preopens = vec![preopen(dir.path(), true)];
    let out = rt.run(&module, call).await;
    assert!(
        matches!(out.status, ExecStatus::Exited(n) if n > 0),
        "{:?}",
        out.status
    );
    assert!(!dir.path().join("other.txt").exists());
}

#[tokio::test]
async fn escapes_from_a_preopen_are_denied() {
    let rt = runtime();
    let module = load(&rt, "open.wat");
    let root = tempfile::tempdir().unwrap();
    let volume = root.path().join("volume");
    let outside = root.path().join("outside");
    std::fs::create_dir_all(&volume).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, volume.join("link-dir")).unwrap();
    std::os::unix::fs::symlink(outside.join("target.txt"), volume.join("link-file")).unwrap();
    std::os::unix::fs::symlink("../outside", volume.join("relative-link")).unwrap();

    for path in [
        "../outside/escaped.txt",
        "/tmp/escaped.txt",
        "link-dir/escaped.txt",
        "link-file",
        "relative-link/escaped.txt",
        "sub/../../outside/escaped.txt",
    ] {
        let mut call = inv(&["open.wasm", path]);
        call.preopens = vec![preopen(&volume, false)];
        let out = rt.run(&module, call).await;
        assert!(
            matches!(out.status, ExecStatus::Exited(n) if n > 0),
            "{path}: {:?}",
            out.status
        );
    }
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing written outside"
    );
    assert!(!Path::new("/tmp/escaped.txt").exists());
}

#[tokio::test]
async fn an_infinite_loop_is_stopped_by_the_timeout() {
    let rt = runtime();
    let mut call = inv(&["loop.wasm"]);
    call.limits.timeout = Duration::from_millis(200);
    let out = rt.run(&load(&rt, "loop.wat"), call).await;
    assert_eq!(out.status, ExecStatus::TimedOut(Duration::from_millis(200)));
    assert_eq!(out.status.to_string(), "timed out after 200ms");
    assert!(out.duration < Duration::from_secs(10), "{:?}", out.duration);
    still_serving(&rt).await;
}

#[tokio::test]
async fn an_infinite_loop_is_stopped_by_fuel() {
    let rt = runtime();
    let mut call = inv(&["loop.wasm"]);
    call.limits.fuel = Some(10_000_000);
    let out = rt.run(&load(&rt, "loop.wat"), call).await;
    assert_eq!(out.status, ExecStatus::FuelExhausted(10_000_000));
    assert_eq!(out.status.to_string(), "fuel exhausted (budget 10000000)");
    assert_eq!(out.fuel_used, Some(10_000_000));

    let mut call = inv(&["noop.wasm"]);
    call.limits.fuel = Some(10_000_000);
    let out = rt.run(&load(&rt, "noop.wat"), call).await;
    assert_eq!(out.status, ExecStatus::Success);
    assert!(out.fuel_used.unwrap() < 100, "{:?}", out.fuel_used);
    still_serving(&rt).await;
}

#[tokio::test]
async fn a_memory_bomb_hits_the_memory_cap() {
    let rt = runtime();
    let mut call = inv(&["membomb.wasm"]);
    call.limits.max_memory = 16 << 20;
    let out = rt.run(&load(&rt, "membomb.wat"), call).await;
    assert_eq!(out.status, ExecStatus::MemoryLimit(16 << 20));
    assert_eq!(out.status.to_string(), "memory limit of 16 MiB exceeded");
    still_serving(&rt).await;
}

/// A module whose memory starts bigger than the limit (as a Python or JavaScript runtime's
/// heap snapshot does) cannot start: the status says the limit is too low for it, by how
/// much, and which setting raises it; a limit above its need runs it.
#[tokio::test]
async fn a_limit_below_what_a_module_needs_to_start_says_so() {
    let rt = runtime();
    // 600 pages: 37.5 MiB of initial memory.
    let wat = r#"(module (memory 600) (func (export "_start")))"#;
    let module = rt.load_bytes("big-heap.wat", wat.as_bytes()).unwrap();
    let mut call = inv(&["big-heap.wasm"]);
    call.limits.max_memory = 16 << 20;
    let out = rt.run(&module, call.clone()).await;
    assert_eq!(
        out.status,
        ExecStatus::MemoryTooSmall {
            limit: 16 << 20,
            needed: 600 * 65536
        }
    );
    assert_eq!(
        out.status.to_string(),
        "memory limit of 16 MiB is below the 37.5 MiB this module needs to start: raise \
         wasmhook.dev/hook-max-memory (or --max-memory)"
    );
    assert_eq!(out.status.name(), "memory-limit");
    call.limits.max_memory = 64 << 20;
    assert_eq!(rt.run(&module, call).await.status, ExecStatus::Success);
}

#[tokio::test]
async fn a_table_bomb_hits_the_table_cap() {
    let rt = runtime();
    let out = rt
        .run(&load(&rt, "tablebomb.wat"), inv(&["tablebomb.wasm"]))
        .await;
    assert_eq!(out.status, ExecStatus::TableLimit(10_000));
    still_serving(&rt).await;
}

#[tokio::test]
async fn an_output_flood_is_capped_without_failing_the_hook() {
    let rt = runtime();
    let mut call = inv(&["flood.wasm"]);
    call.limits.max_output = 1 << 20;
    let out = rt.run(&load(&rt, "flood.wat"), call).await;
    assert_eq!(out.status, ExecStatus::Success);
    assert_eq!(out.output.combined.len(), 1 << 20);
    assert_eq!(out.output.dropped, (1 << 30) - (1 << 20));
    assert!(out.truncated());
    let marked = out.output_with_marker();
    assert!(marked.ends_with(b"[wasmhook: output truncated, 1072693248 bytes dropped]\n"));
}

#[tokio::test]
async fn deep_recursion_and_traps_are_reported_with_a_backtrace() {
    let rt = runtime();
    let out = rt
        .run(&load(&rt, "recurse.wat"), inv(&["recurse.wasm"]))
        .await;
    match &out.status {
        ExecStatus::Trap(msg) => assert!(msg.contains("call stack exhausted"), "{msg}"),
        other => panic!("expected a trap, got {other:?}"),
    }
    let out = rt.run(&load(&rt, "trap.wat"), inv(&["trap.wasm"])).await;
    match &out.status {
        ExecStatus::Trap(msg) => {
            assert!(msg.contains("unreachable"), "{msg}");
            assert!(
                msg.contains("inner") && msg.contains("outer"),
                "backtrace: {msg}"
            );
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    assert!(out.status.to_string().starts_with("trap: "));
    still_serving(&rt).await;
}

#[tokio::test]
async fn a_hook_blocked_in_a_host_call_is_stopped_by_the_timeout() {
    let rt = runtime();
    let mut call = inv(&["block.wasm"]);
    call.limits.timeout = Duration::from_millis(300);
    let out = rt.run(&load(&rt, "block.wat"), call).await;
    assert_eq!(out.status, ExecStatus::TimedOut(Duration::from_millis(300)));
    assert!(out.duration < Duration::from_secs(10));
    still_serving(&rt).await;
}

#[tokio::test]
async fn cancellation_stops_a_hook() {
    let rt = runtime();
    let cancel = CancellationToken::new();
    for name in ["block.wat", "loop.wat"] {
        let cancel = CancellationToken::new();
        let mut call = inv(&[name]);
        call.cancel = Some(cancel.clone());
        let canceller = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            cancel.cancel();
        });
        let out = rt.run(&load(&rt, name), call).await;
        canceller.await.unwrap();
        assert_eq!(out.status, ExecStatus::Cancelled, "{name}");
    }
    drop(cancel);
    // Dropping the future stops it too: the runtime is free afterwards.
    let mut call = inv(&["loop.wasm"]);
    call.limits.timeout = Duration::from_secs(3600);
    let dropped = tokio::time::timeout(
        Duration::from_millis(100),
        rt.run(&load(&rt, "loop.wat"), call),
    )
    .await;
    assert!(dropped.is_err());
    still_serving(&rt).await;
}

#[tokio::test]
async fn invalid_modules_are_load_errors() {
    let rt = runtime();
    let err = rt.load_file(&fixture("nostart.wat")).unwrap_err();
    assert!(matches!(err, LoadError::Invalid { .. }));
    assert!(err.to_string().contains("exports no `_start`"), "{err}");

    let err = rt
        .load_bytes("garbage.wasm", b"\0asm\x01\0\0\0garbage")
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("garbage.wasm: invalid hook module"),
        "{err}"
    );

    let err = rt
        .load_bytes("text.wat", b"(module (func $f (result i32)))")
        .unwrap_err();
    assert!(matches!(err, LoadError::Invalid { .. }), "{err}");

    let err = rt
        .load_file(Path::new("/nonexistent/hook.wasm"))
        .unwrap_err();
    assert!(matches!(err, LoadError::NotFound(_)));

    let import = br#"(module (import "env" "nope" (func)) (func (export "_start")))"#;
    let err = rt.load_bytes("imports.wat", import).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

#[tokio::test]
async fn precompiled_modules_need_an_explicit_allow() {
    let dir = tempfile::tempdir().unwrap();
    let cwasm = runtime()
        .precompile(&std::fs::read(fixture("exit3.wat")).unwrap())
        .unwrap();
    let file = dir.path().join("exit3.cwasm");
    std::fs::write(&file, &cwasm).unwrap();

    let err = runtime().load_file(&file).unwrap_err();
    assert!(matches!(err, LoadError::PrecompiledRefused(_)), "{err}");

    let rt = runtime_with(None, true);
    let module = rt.load_file(&file).unwrap();
    assert_eq!(module.kind(), ModuleKind::P1Command);
    let out = rt.run(&module, inv(&["exit3.cwasm"])).await;
    assert_eq!(out.status, ExecStatus::Exited(3));
}

#[tokio::test]
async fn the_disk_cache_is_reused_and_a_corrupt_entry_is_rebuilt() {
    let cache = tempfile::tempdir().unwrap();
    let first = runtime_with(Some(cache.path()), false);
    let module = first.load_file(&fixture("exit3.wat")).unwrap();
    assert_eq!(first.cache_stats().compiled, 1);
    // A second load of the same content is served from memory.
    first
        .load_bytes("again.wat", &std::fs::read(fixture("exit3.wat")).unwrap())
        .unwrap();
    assert_eq!(first.cache_stats().compiled, 1);

    let entries: Vec<PathBuf> = walk(cache.path());
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    assert!(entry
        .to_string_lossy()
        .ends_with(&format!("{}.cwasm", module.content_hash())));

    // A new process (runtime) deserializes instead of compiling.
    let second = runtime_with(Some(cache.path()), false);
    let module = second.load_file(&fixture("exit3.wat")).unwrap();
    assert_eq!(second.cache_stats().disk_hits, 1);
    assert_eq!(second.cache_stats().compiled, 0);
    assert_eq!(
        second.run(&module, inv(&["x"])).await.status,
        ExecStatus::Exited(3)
    );

    // Flip one byte in the artifact: rejected, deleted, recompiled and rewritten.
    let mut bytes = std::fs::read(entry).unwrap();
    let last = bytes.len() - 100;
    bytes[last] ^= 0xff;
    std::fs::write(entry, &bytes).unwrap();
    let third = runtime_with(Some(cache.path()), false);
    let module = third.load_file(&fixture("exit3.wat")).unwrap();
    let stats = third.cache_stats();
    assert_eq!(
        (stats.disk_rejected, stats.compiled, stats.disk_hits),
        (1, 1, 0)
    );
    assert_eq!(
        third.run(&module, inv(&["x"])).await.status,
        ExecStatus::Exited(3)
    );
    assert_ne!(
        std::fs::read(entry).unwrap(),
        bytes,
        "the entry was rewritten"
    );

    // A foreign file of the right name is not trusted either.
    std::fs::write(entry, b"wasmhook-cwasm-1 but not really").unwrap();
    let fourth = runtime_with(Some(cache.path()), false);
    fourth.load_file(&fixture("exit3.wat")).unwrap();
    assert_eq!(fourth.cache_stats().disk_rejected, 1);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_hooks_do_not_interfere() {
    let rt = runtime();
    let hello = load(&rt, "hello.wat");
    let dump = load(&rt, "dump.wat");
    let looping = load(&rt, "loop.wat");
    let mut tasks = Vec::new();
    for i in 0..200 {
        let rt = rt.clone();
        let (hello, dump, looping) = (hello.clone(), dump.clone(), looping.clone());
        tasks.push(tokio::spawn(async move {
            match i % 10 {
                // A few hostile neighbours spinning until their timeout.
                0 => {
                    let mut call = inv(&["loop.wasm"]);
                    call.limits.timeout = Duration::from_millis(300);
                    let out = rt.run(&looping, call).await;
                    assert!(matches!(out.status, ExecStatus::TimedOut(_)));
                }
                1..=4 => {
                    let arg = format!("call-{i}");
                    let out = rt.run(&dump, inv(&["dump.wasm", &arg])).await;
                    let expected = format!("dump.wasm\0{arg}\0\u{ff}");
                    assert!(
                        out.output.combined.starts_with(&{
                            let mut v = format!("dump.wasm\0{arg}\0").into_bytes();
                            v.push(0xff);
                            v
                        }),
                        "{expected:?}"
                    );
                }
                _ => {
                    let out = rt.run(&hello, inv(&["hello.wasm"])).await;
                    assert_eq!(out.output.combined, b"out 1\nerr\nout 2\n");
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("no task panicked");
    }
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/hooks/bin")
        .join(name)
}

fn identity(kind: HookKind) -> Option<HookIdentity> {
    Some(HookIdentity {
        pod: PodRef {
            name: "web".into(),
            namespace: "default".into(),
            uid: "u1".into(),
        },
        container: "app".into(),
        kind,
    })
}

#[tokio::test]
async fn example_hooks_run_as_p1_modules_p2_commands_and_typed_components() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    for (module, kind) in [
        ("write-message.wasm", ModuleKind::P1Command),
        ("write-message.component.wasm", ModuleKind::P2Command),
    ] {
        let m = rt.load_file(&example(module)).unwrap();
        assert_eq!(m.kind(), kind, "{module}");
        let mut call = inv(&[module, "/data/msg.txt", "hello", module]);
        call.preopens = vec![preopen(dir.path(), false)];
        call.identity = identity(HookKind::PostStart);
        let out = rt.run(&m, call).await;
        assert_eq!(out.status, ExecStatus::Success, "{module}: {out:?}");
        let written = std::fs::read_to_string(dir.path().join("msg.txt")).unwrap();
        assert_eq!(written, format!("hello {module}\n"));

        // Missing argument: the SDK's error becomes a non-zero exit (p2 carries only "err").
        let mut call = inv(&[module]);
        call.identity = identity(HookKind::PostStart);
        let out = rt.run(&m, call).await;
        assert!(
            matches!(out.status, ExecStatus::Exited(n) if n > 0),
            "{module}: {:?}",
            out.status
        );
    }

    let typed = rt.load_file(&example("typed.component.wasm")).unwrap();
    assert_eq!(typed.kind(), ModuleKind::TypedHook);
    let mut call = inv(&["typed.component.wasm"]);
    call.preopens = vec![preopen(dir.path(), false)];
    call.identity = identity(HookKind::PreStop);
    let out = rt.run(&typed, call).await;
    assert_eq!(out.status, ExecStatus::Success, "{out:?}");
    let written = std::fs::read_to_string(dir.path().join("typed-hook.txt")).unwrap();
    assert!(
        written.contains("app") && written.contains("pre"),
        "{written}"
    );

    let mut call = inv(&["typed.component.wasm", "fail", "on", "purpose"]);
    call.preopens = vec![preopen(dir.path(), false)];
    call.identity = identity(HookKind::PreStop);
    let out = rt.run(&typed, call).await;
    match out.status {
        ExecStatus::Failed(msg) => assert!(msg.contains("on purpose"), "{msg}"),
        other => panic!("expected the typed hook's err, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_the_pool_wait_for_a_slot_instead_of_failing() {
    let rt = HookRuntime::new(RuntimeConfig {
        allocator: Allocator::Pooling { max_instances: 2 },
        cache_dir: None,
        allow_precompiled: false,
        default_limits: Limits::default(),
    })
    .unwrap();
    let hello = load(&rt, "hello.wat");
    let blocking = load(&rt, "block.wat");
    let mut tasks = Vec::new();
    for i in 0..24 {
        let (rt, hello, blocking) = (rt.clone(), hello.clone(), blocking.clone());
        tasks.push(tokio::spawn(async move {
            if i % 6 == 0 {
                // Holds a slot until its timeout.
                let mut call = inv(&["block.wasm"]);
                call.limits.timeout = Duration::from_millis(300);
                rt.run(&blocking, call).await.status
            } else {
                rt.run(&hello, inv(&["hello.wasm"])).await.status
            }
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let status = t.await.unwrap();
        if i % 6 == 0 {
            assert!(matches!(status, ExecStatus::TimedOut(_)), "{i}: {status:?}");
        } else {
            assert_eq!(status, ExecStatus::Success, "{i}");
        }
    }
}

/// With the network allowed and a network namespace given, a call runs on a thread of its
/// own inside that namespace (here our own, which needs no privilege): output, exit codes,
/// deadlines and cancellation work there as everywhere; a namespace that cannot be entered
/// is an `Error`, not a panic. Without the network, the namespace is not entered at all.
#[tokio::test]
async fn calls_with_a_network_namespace_run_on_their_own_thread() {
    let rt = runtime();
    let in_ns = |args: &[&str], netns: &str, network: HookNetwork| Invocation {
        netns: Some(netns.into()),
        ..with_network(inv(args), network)
    };
    let out = rt
        .run(
            &load(&rt, "hello.wat"),
            in_ns(&["hello.wasm"], "/proc/self/ns/net", HookNetwork::Allow),
        )
        .await;
    assert_eq!(out.status, ExecStatus::Success);
    assert_eq!(out.output.combined, b"out 1\nerr\nout 2\n");
    let out = rt
        .run(
            &load(&rt, "exit3.wat"),
            in_ns(&["exit3.wasm"], "/proc/self/ns/net", HookNetwork::Allow),
        )
        .await;
    assert_eq!(out.status, ExecStatus::Exited(3));

    let bogus = "/nonexistent/ns/net";
    let out = rt
        .run(
            &load(&rt, "noop.wat"),
            in_ns(&["noop.wasm"], bogus, HookNetwork::Allow),
        )
        .await;
    match &out.status {
        ExecStatus::Error(msg) => assert!(msg.contains("network namespace"), "{msg}"),
        other => panic!("entering {bogus}: {other:?}"),
    }
    // Network denied: the namespace is irrelevant and never entered.
    let out = rt
        .run(
            &load(&rt, "noop.wat"),
            in_ns(&["noop.wasm"], bogus, HookNetwork::Deny),
        )
        .await;
    assert_eq!(out.status, ExecStatus::Success);

    // Cancelled from the caller's side while it spins on the namespace's thread.
    let cancel = CancellationToken::new();
    let spin = Invocation {
        cancel: Some(cancel.clone()),
        ..in_ns(&["loop.wasm"], "/proc/self/ns/net", HookNetwork::Allow)
    };
    let module = load(&rt, "loop.wat");
    let call = tokio::spawn({
        let rt = rt.clone();
        async move { rt.run(&module, spin).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    cancel.cancel();
    let out = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("a cancelled call ends")
        .unwrap();
    assert_eq!(out.status, ExecStatus::Cancelled);
    still_serving(&rt).await;
}

/// The port `connect.wat` connects to, on 127.0.0.1. Tests using it take turns.
const CONNECT_PORT: u16 = 47613;
static CONNECT_PORT_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `call` under the network policy `network`.
fn with_network(mut call: Invocation, network: HookNetwork) -> Invocation {
    call.limits.network = network;
    call
}

fn connect_inv(network: HookNetwork, netns: Option<PathBuf>) -> Invocation {
    Invocation {
        netns,
        ..with_network(inv(&["connect.wasm"]), network)
    }
}

/// Binds 127.0.0.1:CONNECT_PORT in this process's network namespace without listening, so
/// that, while it is held, connections there are refused and nobody else can listen there.
fn refuse_connections_on_host() -> tokio::net::TcpSocket {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind((std::net::Ipv4Addr::LOCALHOST, CONNECT_PORT).into())
        .unwrap_or_else(|e| {
            panic!("127.0.0.1:{CONNECT_PORT} is in use on this host, the test needs it: {e}")
        });
    socket
}

/// Whether `listener` has a connection waiting (it is nonblocking).
fn accepted(listener: &std::net::TcpListener) -> bool {
    match listener.accept() {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(e) => panic!("accept: {e}"),
    }
}

/// A preview 2 component's TCP sockets work when the network is allowed: it connects to a
/// listener, gets its connection refused without one, and is denied with the network off.
#[tokio::test]
async fn p2_component_connects_with_network_allowed() {
    let _turn = CONNECT_PORT_TURN.lock().await;
    let rt = runtime();
    let module = load(&rt, "connect.wat");
    assert_eq!(module.kind(), ModuleKind::P2Command);

    let listener = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, CONNECT_PORT))
        .unwrap_or_else(|e| panic!("listening on 127.0.0.1:{CONNECT_PORT}: {e}"));
    listener.set_nonblocking(true).unwrap();
    let out = rt.run(&module, connect_inv(HookNetwork::Allow, None)).await;
    assert_eq!(out.status, ExecStatus::Success, "{out:?}");
    assert!(
        accepted(&listener),
        "the hook's connection reached the listener"
    );

    // The network denied: WASI refuses to create the socket (`create-tcp-socket` returns
    // `access-denied`: TCP is not allowed), and the command returns err.
    let out = rt.run(&module, connect_inv(HookNetwork::Deny, None)).await;
    assert_eq!(out.status, ExecStatus::Exited(1), "{out:?}");
    assert!(
        !accepted(&listener),
        "no connection with the network denied"
    );
    drop(listener);

    let _refusing = refuse_connections_on_host();
    let out = rt.run(&module, connect_inv(HookNetwork::Allow, None)).await;
    assert_eq!(out.status, ExecStatus::Exited(1), "{out:?}");
}

/// Root and `ip` (iproute2), or a skip; `WASMHOOK_REQUIRE_RUNC=1` (CI) makes it a failure.
fn netns_ready() -> bool {
    let problem = if !rustix::process::geteuid().is_root() {
        Some("not root".to_string())
    } else {
        common::ip_problem()
    };
    common::can_run(
        "network namespace test",
        &["WASMHOOK_REQUIRE_RUNC"],
        problem,
    )
}

/// A named network namespace (`ip netns add`) with `lo` up, deleted on drop.
struct NetNs {
    name: String,
}

impl NetNs {
    fn create() -> NetNs {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ns = NetNs {
            name: format!("wasmhook-test-{}-{n}", std::process::id()),
        };
        ns.ip(&["netns", "add", &ns.name]);
        ns.ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    fn ip(&self, args: &[&str]) {
        let out = std::process::Command::new("ip")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "delete", &self.name])
            .output();
    }
}

/// A thread in the namespace at `ns` listening on 127.0.0.1:`port` until it accepted one
/// connection (`true`) or 20 s passed (`false`). Returns once it listens.
fn listen_in(ns: &Path, port: u16) -> std::thread::JoinHandle<bool> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let path = ns.to_owned();
    let thread = std::thread::spawn(move || {
        let f = std::fs::File::open(&path).unwrap();
        rustix::thread::move_into_link_name_space(
            std::os::fd::AsFd::as_fd(&f),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .unwrap();
        let listener = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        ready_tx.send(()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if accepted(&listener) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    });
    if ready_rx.recv_timeout(Duration::from_secs(10)).is_err() {
        let why = thread.join().err().and_then(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        });
        panic!("the listener in {} did not start: {why:?}", ns.display());
    }
    thread
}

/// A hook's sockets live in the network namespace it is given: its 127.0.0.1 is the
/// namespace's loopback, where a listener (that the host's loopback does not have) accepts
/// its connection; without the namespace the same hook is refused on the host's loopback.
#[tokio::test]
async fn sockets_live_in_the_given_network_namespace() {
    if !netns_ready() {
        return;
    }
    let _turn = CONNECT_PORT_TURN.lock().await;
    let rt = runtime();
    let module = load(&rt, "connect.wat");
    let _refusing = refuse_connections_on_host();
    let ns = NetNs::create();
    let listener = listen_in(&ns.path(), CONNECT_PORT);

    let out = rt
        .run(&module, connect_inv(HookNetwork::Allow, Some(ns.path())))
        .await;
    assert_eq!(out.status, ExecStatus::Success, "{out:?}");
    assert!(
        listener.join().unwrap(),
        "the namespace's listener got the hook's connection"
    );

    let out = rt.run(&module, connect_inv(HookNetwork::Allow, None)).await;
    assert_eq!(
        out.status,
        ExecStatus::Exited(1),
        "the host's 127.0.0.1:{CONNECT_PORT} has no listener: {out:?}"
    );
}
