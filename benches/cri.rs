//! `wasmhook cri` against containerd's own `ExecSync`, in one run, on one container. The proxy
//! is the `wasmhook` binary in a process of its own, as a node runs it:
//!
//! - `ExecSync /bin/true, straight to containerd`: the baseline, a `runc exec` through
//!   containerd and its shim (what every native exec hook and exec probe costs on a node).
//! - `ExecSync /bin/true through the proxy`: the same, relayed (not wasm: forwarded).
//! - `ExecSync noop.wasm through the proxy`: the wasm module in the image, run by the proxy
//!   (context cached, module compiled once).
//! - `Version` and `ContainerStatus`, straight and through the proxy in turns: the relay's
//!   overhead. `Version` also through a byte-copy relay (a thread per direction): what any
//!   process on the path costs at the least.
//! - CPU of 1000 exec probes (`timeout: 1`), wasm vs native: busy time of the whole machine
//!   (`/proc/stat`), so containerd, the shim, runc and the proxy all count.
//! - Scale (group `cri-pods`): P pods of 5 busybox containers each started through a
//!   `wasmhook cri` process (sandbox, then create + start of each container, one pod after
//!   another, as one pod worker of the kubelet would): time per pod until all are running,
//!   at P=20 and P=200, each P also straight to containerd (the baseline of the proxy's row
//!   at that P, so containerd's own growth with P shows apart); then one wasm `ExecSync` per
//!   container (every container's context looked up once, then cached), a warm round; the
//!   memory the proxy keeps per pod (its RSS after the rounds less before, the module
//!   already compiled) and its peak RSS. Flat means P=200 per pod within a little of P=20.
//!
//! Needs root, containerd, runc and busybox-static (as `tests/cri_proxy/`); prints a SKIP
//! row otherwise. Lines mode only (`WASMHOOK_BENCH_FORMAT=lines`, see benches/common).

mod common;
#[path = "../tests/common/mod.rs"]
mod harness;

use std::time::Instant;

use harness::containerd::Containerd;
use harness::cri::{self, Cri};

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
    // As a node runs it: the binary, in a process of its own. In this process, on the
    // bench's own runtime, the proxy found the client's worker threads warm and measured
    // half the relay overhead it has on its own.
    let proxy = ProxyProcess::start(cd, "proxy");

    let direct = Cri::new(cd.socket());
    let via = Cri::new(&proxy.socket);
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
    // The same call straight to containerd and through relays, in turns (which goes first
    // rotates too), so a change in the machine's load during the run weighs on every row
    // alike: a relay's overhead is the difference of two rows, a fraction of either.
    macro_rules! in_turns {
        ($n:expr, $($call:expr),+ $(,)?) => {{
            const K: usize = [$(stringify!($call)),+].len();
            for _ in 0..3.min($n) {
                $($call.await.unwrap();)+
            }
            let mut samples: [Vec<std::time::Duration>; K] = Default::default();
            for i in 0..$n {
                for turn in 0..K {
                    let which = (i + turn) % K;
                    let mut j = 0;
                    $(
                        if j == which {
                            let t = Instant::now();
                            $call.await.unwrap();
                            samples[j].push(t.elapsed());
                        }
                        j += 1;
                    )+
                    let _ = j;
                }
            }
            samples.map(|d| common::stats(&d))
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
    let copy = ByteRelay::start(cd);
    let via_copy = Cri::new(&copy.socket);
    let [d, v, c] = in_turns!(n, direct.version(), via.version(), via_copy.version());
    common::emit(G, vbase, d, "", "in turns with the two rows below");
    common::emit(
        G,
        "Version through the proxy",
        v,
        vbase,
        "relayed byte for byte",
    );
    common::emit(
        G,
        "Version through a byte-copy relay",
        c,
        vbase,
        "a thread per direction copying the socket: the least a process on the path costs",
    );
    let sbase = "ContainerStatus(verbose), straight to containerd";
    let [d, v] = in_turns!(
        n,
        direct.container_status(id, true),
        via.container_status(id, true)
    );
    common::emit(G, sbase, d, "", "in turns with the row below");
    common::emit(
        G,
        "ContainerStatus(verbose) through the proxy",
        v,
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

    drop(proxy);
    // Dropping the harness stops the pod, containerd and its shims.

    // Each P straight to containerd, then through the proxy: the same work with and without
    // it, so containerd's own growth with P is told apart from the proxy's.
    let sizes = common::sizes(&[20, 200], &[2, 4]);
    warm_up(cd).await;
    for &p in &sizes {
        scale(cd, p, sizes[0], false).await;
        scale(cd, p, sizes[0], true).await;
    }
}

const PODS: &str = "cri-pods";
const CONTAINERS_PER_POD: usize = 5;

/// Start `p` pods of [`CONTAINERS_PER_POD`] containers, through a `wasmhook cri` process
/// (`proxied`) or straight to containerd, and report the cost per pod; through the proxy,
/// also a wasm `ExecSync` per container and the proxy's peak RSS. Every pod is removed
/// after.
/// `base` is the smallest P, the baseline of the larger ones.
async fn scale(cd: &Containerd, p: usize, base: usize, proxied: bool) {
    let proxy = proxied.then(|| ProxyProcess::start(cd, &format!("scale-{p}")));
    let client = match &proxy {
        Some(px) => Cri::new(&px.socket),
        None => Cri::new(cd.socket()),
    };
    let via = if proxied {
        "through the proxy"
    } else {
        "straight to containerd"
    };
    // The baseline row of a larger P: the same row at the smallest P.
    let base_of = |what: &str| {
        if p != base {
            format!("{what} {via}, P={base}")
        } else {
            String::new()
        }
    };
    let started = Instant::now();
    let mut pods = Vec::with_capacity(p);
    let mut containers = Vec::with_capacity(p * CONTAINERS_PER_POD);
    for i in 0..p {
        let name = format!("scale{}-{p}-{i}", if proxied { "p" } else { "d" });
        let pod = cri::run_busybox_pod(&client, cd, &name, &[]).await.unwrap();
        containers.push(pod.container_id.clone());
        for c in 1..CONTAINERS_PER_POD {
            containers.push(
                cri::add_container(&client, &pod, &format!("c{c}"))
                    .await
                    .unwrap(),
            );
        }
        pods.push(pod);
    }
    let per_pod = started.elapsed().as_secs_f64() * 1000.0 / p as f64;
    let name = format!("pod start ({CONTAINERS_PER_POD} containers) {via}, P={p}");
    // Through the proxy: the same P straight to containerd (the proxy's own share);
    // straight: the smallest P (containerd's own growth).
    let start_base = if proxied {
        format!("pod start ({CONTAINERS_PER_POD} containers) straight to containerd, P={p}")
    } else {
        base_of(&format!("pod start ({CONTAINERS_PER_POD} containers)"))
    };
    common::emit_value(
        PODS,
        &name,
        per_pod,
        "ms/pod",
        &start_base,
        "sandbox + create/start, pods one after another",
    );

    if let Some(px) = &proxy {
        // µs per call of one wasm `ExecSync` on every container.
        let round = || async {
            let t = Instant::now();
            for id in &containers {
                let r = client
                    .exec_sync(id, &["/hooks/noop.wasm"], 0)
                    .await
                    .unwrap();
                assert_eq!(r.exit_code, 0, "{}", r.stderr());
            }
            t.elapsed().as_secs_f64() * 1e6 / containers.len() as f64
        };
        // The module compiled and the engine warm, before memory is read.
        let r = client
            .exec_sync(&containers[0], &["/hooks/noop.wasm"], 0)
            .await
            .unwrap();
        assert_eq!(r.exit_code, 0, "{}", r.stderr());
        let before = px.rss_mib("VmRSS:");
        let cold = round().await;
        let warm = round().await;
        common::emit_value(
            PODS,
            &format!("wasm ExecSync, first per container through the proxy, P={p}"),
            cold,
            "µs/call",
            &base_of("wasm ExecSync, first per container"),
            "context looked up (ContainerStatus, PodSandboxStatus)",
        );
        common::emit_value(
            PODS,
            &format!("wasm ExecSync, warm through the proxy, P={p}"),
            warm,
            "µs/call",
            &base_of("wasm ExecSync, warm"),
            "context cached",
        );
        let after = px.rss_mib("VmRSS:");
        common::emit_value(
            PODS,
            &format!("proxy memory per pod through the proxy, P={p}"),
            (after - before).max(0.0) * 1024.0 / p as f64,
            "KiB/pod",
            &base_of("proxy memory per pod"),
            &format!(
                "RSS kept by {n} cached contexts; peak RSS {peak:.1} MiB",
                n = containers.len(),
                peak = px.rss_mib("VmHWM:")
            ),
        );
    }
    for pod in &pods {
        let _ = client.stop_pod_sandbox(&pod.sandbox_id).await;
        let _ = client.remove_pod_sandbox(&pod.sandbox_id).await;
    }
}

/// A few pods started and removed, untimed, so the first timed size does not pay for
/// containerd settling after the probe rounds above (measured: the first P=20 straight to
/// containerd took 1.5x the same pods through the proxy right after it).
async fn warm_up(cd: &Containerd) {
    let client = Cri::new(cd.socket());
    for i in 0..3 {
        let pod = cri::run_busybox_pod(&client, cd, &format!("warmup-{i}"), &[])
            .await
            .unwrap();
        let _ = client.stop_pod_sandbox(&pod.sandbox_id).await;
        let _ = client.remove_pod_sandbox(&pod.sandbox_id).await;
    }
}

/// `wasmhook cri` as a process of its own, so its peak RSS is its own. Killed and reaped on
/// drop.
struct ProxyProcess {
    child: std::process::Child,
    socket: std::path::PathBuf,
}

impl ProxyProcess {
    fn start(cd: &Containerd, tag: &str) -> ProxyProcess {
        let socket = cd.dir().join(format!("{tag}.sock"));
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_wasmhook"))
            .arg("--no-cache")
            .args(["cri", "--listen"])
            .arg(&socket)
            .arg("--runtime-endpoint")
            .arg(cd.socket())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("spawn wasmhook cri");
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        while !socket.exists() {
            assert!(
                Instant::now() < deadline,
                "wasmhook cri did not listen on {}",
                socket.display()
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        ProxyProcess { child, socket }
    }

    /// A memory field of the proxy's `/proc/<pid>/status` (`VmRSS:`, `VmHWM:`), in MiB.
    fn rss_mib(&self, field: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The floor of any relay: one accepted connection, copied to a connection of its own to
/// containerd by a thread per direction, byte for byte. One connection is enough: the bench's
/// client makes one per socket, as the kubelet does.
struct ByteRelay {
    socket: std::path::PathBuf,
}

impl ByteRelay {
    fn start(cd: &Containerd) -> ByteRelay {
        use std::os::unix::net::{UnixListener, UnixStream};
        let socket = cd.dir().join("byte-relay.sock");
        let listener = UnixListener::bind(&socket).expect("bind the byte-copy relay");
        let upstream = cd.socket();
        std::thread::spawn(move || {
            let Ok((client, _)) = listener.accept() else {
                return;
            };
            let runtime = UnixStream::connect(&upstream).expect("connect to containerd");
            let pipe = |mut from: UnixStream, mut to: UnixStream| {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Write);
                })
            };
            pipe(client.try_clone().unwrap(), runtime.try_clone().unwrap());
            pipe(runtime, client);
        });
        ByteRelay { socket }
    }
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
