//! Many calls at once on one runtime, and calls beyond the pool.

use super::*;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_the_pool_wait_for_a_slot_instead_of_failing() {
    let rt = pool_of(2);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_queued_for_the_pool_get_it_in_arrival_order_or_time_out() {
    let rt = pool_of(1);
    let hello = load(&rt, "hello.wat");
    let blocking = load(&rt, "block.wat");
    // The only slot, held until this call's timeout.
    let holder = {
        let (rt, blocking) = (rt.clone(), blocking.clone());
        let mut call = inv(&["block.wasm"]);
        call.limits.timeout = Duration::from_millis(600);
        tokio::spawn(async move { rt.run(&blocking, call).await.status })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Calls arriving one after another while the slot is held; the third gives up first.
    let finished = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut queued = Vec::new();
    for i in 0..5 {
        let (rt, hello, finished) = (rt.clone(), hello.clone(), finished.clone());
        let mut call = inv(&["hello.wasm"]);
        if i == 2 {
            call.limits.timeout = Duration::from_millis(150);
        }
        queued.push(tokio::spawn(async move {
            let status = rt.run(&hello, call).await.status;
            finished.lock().unwrap().push(i);
            status
        }));
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert!(matches!(holder.await.unwrap(), ExecStatus::TimedOut(_)));
    let statuses: Vec<_> = futures::future::join_all(queued)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    for (i, status) in statuses.iter().enumerate() {
        if i == 2 {
            assert!(matches!(status, ExecStatus::TimedOut(_)), "{i}: {status:?}");
        } else {
            assert_eq!(*status, ExecStatus::Success, "{i}");
        }
    }
    // The one that timed out left the queue without holding up those behind it.
    assert_eq!(*finished.lock().unwrap(), [2, 0, 1, 3, 4]);
}

/// A runtime whose pool holds `max_instances` calls at once.
fn pool_of(max_instances: u32) -> HookRuntime {
    HookRuntime::new(RuntimeConfig {
        allocator: Allocator::Pooling { max_instances },
        cache_dir: None,
        allow_precompiled: false,
        default_limits: Limits::default(),
    })
    .unwrap()
}
