//! Hostile hooks stopped by their limits (time, fuel, memory, tables, output, stack) and
//! by cancellation, each reported as such.

use super::*;

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

/// A hook that opens a FIFO in its volume, with no one at the other end, blocks a tokio
/// blocking thread in open(2), which no timeout can interrupt. When the call stops (at its
/// timeout, cancelled, or its future dropped), the runtime opens that FIFO itself and the
/// thread comes back. With a blocking pool of one thread, the next hook's file IO needs that
/// very thread: without the release it would wait behind the stuck open and time out.
#[test]
fn a_stopped_hook_does_not_keep_a_thread_blocked_opening_a_fifo() {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    common::mkfifo(&dir.path().join("fifo"));
    let rt = runtime();
    let call = |args: &[&str], timeout: Duration| Invocation {
        preopens: vec![preopen(dir.path(), false)],
        limits: Limits {
            timeout,
            ..Limits::default()
        },
        ..inv(args)
    };
    let outcomes = tokio.block_on(async {
        let mut outcomes = Vec::new();
        for stop in ["timeout", "cancel", "drop"] {
            let fifo = load(&rt, "fifo.wat");
            let mut blocked = call(&["fifo.wasm", "fifo"], Duration::from_millis(300));
            let stopped = match stop {
                "timeout" => Some(rt.run(&fifo, blocked).await.status),
                "cancel" => {
                    let cancel = CancellationToken::new();
                    blocked.limits.timeout = Duration::from_secs(3600);
                    blocked.cancel = Some(cancel.clone());
                    let canceller = tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        cancel.cancel();
                    });
                    let out = rt.run(&fifo, blocked).await;
                    canceller.await.unwrap();
                    Some(out.status)
                }
                _ => {
                    blocked.limits.timeout = Duration::from_secs(3600);
                    let run = rt.run(&fifo, blocked);
                    let dropped = tokio::time::timeout(Duration::from_millis(300), run).await;
                    assert!(dropped.is_err(), "the FIFO open returned by itself");
                    None
                }
            };
            let next = rt
                .run(
                    &load(&rt, "open.wat"),
                    call(&["open.wasm", "file", stop], Duration::from_secs(10)),
                )
                .await;
            outcomes.push((stop, stopped, next.status));
        }
        outcomes
    });
    // Not dropped: a runtime waits for its blocking threads, and a failing run has one stuck.
    tokio.shutdown_background();
    for (stop, stopped, next) in outcomes {
        match stop {
            "timeout" => assert_eq!(
                stopped,
                Some(ExecStatus::TimedOut(Duration::from_millis(300)))
            ),
            "cancel" => assert_eq!(stopped, Some(ExecStatus::Cancelled)),
            _ => {}
        }
        assert_eq!(
            next,
            ExecStatus::Success,
            "the call after one stopped by {stop}"
        );
    }
}
