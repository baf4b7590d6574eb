//! `wasmhook cri` against containerd's own `ExecSync`, in one run, on one container:
//!
//! - `ExecSync /bin/true, straight to containerd`: the baseline, a `runc exec` through
//!   containerd and its shim (what every native exec hook and exec probe costs on a node).
//! - `ExecSync /bin/true through the proxy`: the same, relayed (not wasm: forwarded).
//! - `ExecSync noop.wasm through the proxy`: the wasm module in the image, run by the proxy
//!   (context cached, module compiled once).
//! - `Version` and `ContainerStatus`, straight and through the proxy: the relay's overhead.
//! - CPU of 1000 exec probes (`timeout: 1`), wasm vs native: busy time of the whole machine
//!   (`/proc/stat`), so containerd, the shim, runc and the proxy all count.
//!
//! Needs root, containerd, runc and busybox-static (as `tests/cri_proxy.rs`); prints a SKIP
//! row otherwise. Lines mode only (`WASMHOOK_BENCH_FORMAT=lines`, see benches/common).

mod common;
#[path = "../tests/common/mod.rs"]
mod harness;

use std::time::Instant;

use harness::containerd::Containerd;
use harness::cri::{self, Cri, RunningProxy};
use wasmhook::cri::CriProxyConfig;

const G: &str = "cri";

fn main() {
    if !common::lines_mode() {
        eprintln!(
            "benches/cri.rs prints lines only: WASMHOOK_BENCH_FORMAT=lines cargo bench --bench cri"
        );
    }
    if !harness::containerd::containerd_ready() {
        common::emit_skip(
            G,
            "ExecSync",
            "needs root, containerd, runc and busybox-static",
        );
        return;
    }
    let Some(cd) = Containerd::start_with(cri::hooks::install_image_hooks) else {
        common::emit_skip(G, "ExecSync", "containerd could not start");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(bench(&cd));
}

async fn bench(cd: &Containerd) {
    let proxy_sock = cd.dir().join("proxy.sock");
    let running = RunningProxy::start(CriProxyConfig {
        listen: proxy_sock.clone(),
        runtime_endpoint: cd.socket(),
        ..CriProxyConfig::default()
    })
    .await;

    let direct = Cri::new(cd.socket());
    let via = Cri::new(&proxy_sock);
    let pod = cri::run_busybox_pod(&direct, cd, "bench", &[])
        .await
        .unwrap();
    let id = pod.container_id.as_str();

    let n = common::samples(300);
    let exec_n = common::samples(100);
    macro_rules! time {
        ($n:expr, $call:expr) => {{
            for _ in 0..3.min($n) {
                $call.await.unwrap();
            }
            let mut d = Vec::with_capacity($n);
            for _ in 0..$n {
                let t = Instant::now();
                $call.await.unwrap();
                d.push(t.elapsed());
            }
            common::stats(&d)
        }};
    }
    let base = "ExecSync /bin/true, straight to containerd";
    let s = time!(exec_n, direct.exec_sync(id, &["/bin/true"], 0));
    common::emit(G, base, s, "", "runc exec via containerd + shim");
    let s = time!(exec_n, via.exec_sync(id, &["/bin/true"], 0));
    common::emit(
        G,
        "ExecSync /bin/true through the proxy (forwarded)",
        s,
        base,
        "not wasm: relayed unchanged",
    );
    let s = time!(n, async {
        let r = via.exec_sync(id, &["/hooks/noop.wasm"], 0).await?;
        assert_eq!(r.exit_code, 0, "{}", r.stderr());
        Ok::<_, wasmhook::grpc::Status>(r)
    });
    common::emit(
        G,
        "ExecSync noop.wasm through the proxy",
        s,
        base,
        "module in the image; context cached",
    );

    let vbase = "Version, straight to containerd";
    let s = time!(n, direct.version());
    common::emit(G, vbase, s, "", "");
    let s = time!(n, via.version());
    common::emit(
        G,
        "Version through the proxy",
        s,
        vbase,
        "relayed byte for byte",
    );
    let sbase = "ContainerStatus(verbose), straight to containerd";
    let s = time!(n, direct.container_status(id, true));
    common::emit(G, sbase, s, "", "");
    let s = time!(n, via.container_status(id, true));
    common::emit(
        G,
        "ContainerStatus(verbose) through the proxy",
        s,
        sbase,
        "relayed byte for byte",
    );

    // CPU of exec probes: the whole machine's busy time over `probes` calls.
    let probes = common::samples(1000);
    let native = busy_seconds(async {
        for _ in 0..probes {
            direct.exec_sync(id, &["/bin/true"], 1).await.unwrap();
        }
    })
    .await;
    let wasm = busy_seconds(async {
        for _ in 0..probes {
            via.exec_sync(id, &["/hooks/noop.wasm"], 1).await.unwrap();
        }
    })
    .await;
    let nb = format!("CPU of {probes} exec probes, native /bin/true (containerd)");
    common::emit_value(
        G,
        &nb,
        native,
        "CPU s",
        "",
        "busy time of all cores (/proc/stat)",
    );
    common::emit_value(
        G,
        &format!("CPU of {probes} exec probes, noop.wasm through the proxy"),
        wasm,
        "CPU s",
        &nb,
        "busy time of all cores (/proc/stat)",
    );

    let _ = running.stop().await;
    // Dropping the harness stops the pod, containerd and its shims.
}

/// Busy CPU seconds of the whole machine while `f` runs (all cores: user, nice, system,
/// irq, softirq, steal).
async fn busy_seconds(f: impl std::future::Future<Output = ()>) -> f64 {
    fn busy() -> f64 {
        let stat = std::fs::read_to_string("/proc/stat").unwrap();
        let cpu: Vec<u64> = stat
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse().unwrap())
            .collect();
        // user nice system idle iowait irq softirq steal ...
        let ticks = cpu[0] + cpu[1] + cpu[2] + cpu[5] + cpu[6] + cpu[7];
        ticks as f64 / 100.0 // USER_HZ
    }
    let before = busy();
    f.await;
    busy() - before
}
