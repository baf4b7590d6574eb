//! Hostile hooks that must be stopped by their limits (time, fuel, memory, tables, stack,
//! output), and reported as such.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_infinite_loop() {
    let c = Case::new("infinite loop", "postStart", &wat("loop.wat"), &[]);
    limit_case(c, "timeout 1s", "stopped: timed out after 1s").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_infinite_loop_fuel() {
    let c = Case::new(
        "infinite loop, fuel 10M",
        "postStart",
        &wat("loop.wat"),
        &[],
    )
    .annotate("wasmhook.dev/hook-fuel", "10000000")
    .annotate("wasmhook.dev/hook-timeout", "10s");
    limit_case(c, "fuel exhausted", "stopped: fuel exhausted").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_infinite_loop_pre_stop() {
    let c = Case::new("infinite loop in preStop", "preStop", &wat("loop.wat"), &[]);
    limit_case(c, "timeout 1s", "stopped: timed out after 1s").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_host_call_loops() {
    for (name, file) in [
        ("loop of fd_write(0 bytes)", "write0-loop.wat"),
        ("loop of sched_yield", "yield-loop.wat"),
        ("loop of clock_time_get", "clock-loop.wat"),
    ] {
        let c = Case::new(name, "postStart", &hostile(file), &[]);
        limit_case(c, "timeout 1s", "stopped: timed out after 1s").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_blocking_host_call_pre_stop() {
    let c = Case::new(
        "poll_oneoff 1 h in preStop",
        "preStop",
        &wat("block.wat"),
        &[],
    );
    limit_case(c, "timeout 1s", "stopped: timed out after 1s").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_fifo_open_in_the_volume() {
    // A FIFO in the volume (a container can make one) that the hook opens for writing with
    // no reader: open(2) waits on one of the engine's blocking threads, and no timeout can
    // interrupt it. The hook must stop at its timeout, and the engine must not keep a thread
    // waiting there: the runtime opens the FIFO itself when the call stops.
    let tmp = TempDir::new("fifo");
    let vol = tmp.sub("vol");
    common::mkfifo(&vol.join("fifo"));
    let c = Case::new(
        "open of a FIFO in the volume, no reader",
        "postStart",
        &wat("fifo.wat"),
        &["fifo"],
    )
    .with_volume(&vol, false);
    limit_case(
        c,
        "timeout 1s, no thread left waiting",
        "stopped: timed out after 1s",
    )
    .await;
    // Released as the call stopped; the woken thread may need a moment to leave open(2).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while waiting_for_a_fifo_partner() > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left = waiting_for_a_fifo_partner();
    if left > 0 {
        // Free them before failing: the test's runtime would wait for them when dropped.
        use std::os::unix::fs::OpenOptionsExt;
        let _reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(vol.join("fifo"));
    }
    assert_eq!(
        left, 0,
        "threads still opening the FIFO after the hook stopped"
    );
}

/// Threads of this process asleep in the kernel's FIFO open, waiting for the other end.
fn waiting_for_a_fifo_partner() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("wchan")).is_ok_and(|w| w == "wait_for_partner")
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_memory_bomb() {
    let c = Case::new(
        "memory bomb, cap 16Mi",
        "postStart",
        &wat("membomb.wat"),
        &[],
    )
    .annotate("wasmhook.dev/hook-max-memory", "16Mi");
    limit_case(
        c,
        "memory limit 16 MiB",
        "stopped: memory limit of 16 MiB exceeded",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_table_bomb() {
    let c = Case::new("table bomb", "postStart", &wat("tablebomb.wat"), &[]);
    limit_case(
        c,
        "table limit 10000",
        "stopped: table limit of 10000 elements exceeded",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_deep_recursion() {
    let c = Case::new("deep recursion", "postStart", &wat("recurse.wat"), &[]);
    limit_case(c, "stack exhausted trap", "trapped: ").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_trap() {
    let c = Case::new("unreachable trap", "postStart", &wat("trap.wat"), &[]);
    limit_case(c, "trap with backtrace", "trapped: ").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_component_never_returns() {
    let c = Case::new(
        "component never returns",
        "postStart",
        &hostile("component-loop.wat"),
        &[],
    );
    limit_case(c, "timeout 1s", "stopped: timed out after 1s").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_output_flood() {
    // 1 GiB written: kept to the 1 MiB cap, the rest counted and dropped; either the hook gets
    // through it (success, truncated output) or the timeout stops it. Never unbounded memory.
    let c = Case::new("output flood 1 GiB", "postStart", &wat("flood.wat"), &[])
        .annotate("wasmhook.dev/hook-timeout", "20s");
    let r = run_case(&c).await;
    let h = r.hostile.hook("postStart").unwrap();
    assert!(
        h.output.len() <= (1 << 20) + 200,
        "output not capped: {} bytes",
        h.output.len()
    );
    let marker = String::from_utf8_lossy(&h.output[h.output.len().saturating_sub(120)..])
        .contains("output truncated");
    let observed = match &h.error {
        None => {
            assert!(marker, "truncated output has no marker");
            format!(
                "succeeded, output kept {} bytes + truncation marker",
                h.output.len() - 60.min(h.output.len())
            )
        }
        Some(e) => {
            assert!(e.contains("timed out"), "unexpected: {e}");
            "timed out at 20s".into()
        }
    };
    emit(c.name, "output capped at 1 MiB", &observed, r.hook_ms);
}
