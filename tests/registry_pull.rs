//! Image pulls of the runc backend from a real registry (`docker-registry` on 127.0.0.1,
//! plain HTTP through `--insecure-registry`), through `wasmhook run`: pull policies, the
//! kubelet's events and waiting reasons, digest references, multi-platform indexes, zstd
//! layers, and `--images` winning over a pull.
//!
//! Needs root, `runc`, `ip`, `/bin/busybox` and `/usr/bin/docker-registry`. With
//! `WASMHOOK_REQUIRE_REGISTRY=1` (or `WASMHOOK_REQUIRE_RUNC=1`; `.ci/run` sets both) a
//! missing piece FAILS the tests; without, they are skipped with a message on stderr.

mod common;

use std::path::Path;

use common::registry::{self, host_and_foreign_arch, push_image, push_index, Compression};
use common::run::{path_str, run, s, Run};
use common::TempDir;

/// A one-container pod `p` (restartPolicy Never) printing `/etc/marker`.
fn pod(tmp: &TempDir, image: &str, policy: Option<&str>) -> String {
    let policy = policy
        .map(|p| format!("\n    imagePullPolicy: {p}"))
        .unwrap_or_default();
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  restartPolicy: Never\n  \
         containers:\n  - name: c\n    image: {image}{policy}\n    \
         command: [sh, -c, 'cat /etc/marker; echo']\n"
    );
    let path = tmp.path().join("pod.yaml");
    std::fs::write(&path, yaml).unwrap();
    path_str(&path).to_string()
}

/// `wasmhook run --backend runc` against `reg`, state in `state`.
fn run_pod(
    tmp: &TempDir,
    state: &Path,
    reg: &registry::Registry,
    pod: &str,
    extra: &[&str],
) -> Run {
    let mut args = vec![
        "--backend",
        "runc",
        "--state-dir",
        path_str(state),
        "--insecure-registry",
        &reg.addr,
        "--backoff-scale",
        "0.01",
        "--logs",
    ];
    args.extend_from_slice(extra);
    args.push(pod);
    run(tmp.path(), &args)
}

/// The events' `(reason, message)`, in order.
fn messages(r: &Run) -> Vec<(String, String)> {
    r.events()
        .iter()
        .map(|e| (s(&e["reason"]), s(&e["message"])))
        .collect()
}

fn log_lines(r: &Run) -> Vec<String> {
    r.lines()
        .iter()
        .filter(|v| v["kind"] == "Log")
        .map(|v| s(&v["line"]))
        .collect()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn assert_ran(r: &Run, marker: &str) {
    assert_eq!(r.code(), Some(0), "{}", r.dump());
    assert_eq!(log_lines(r), [marker], "{}", r.dump());
    assert_eq!(s(&r.pod_status("p")["phase"]), "Succeeded", "{}", r.dump());
}

/// Pulled once, then `IfNotPresent` finds it (`already present`), `Always` pulls again
/// (the layers come from the cache), `Never` uses it.
#[test]
fn pull_then_already_present() {
    if !registry::ready() {
        return;
    }
    let reg = registry::Registry::start();
    let image = reg.reference("app:v1");
    let pushed = rt().block_on(push_image(
        &reg.client(),
        &image,
        host_and_foreign_arch().0,
        "pulled",
        Compression::Gzip,
    ));
    assert!(pushed.digest.starts_with("sha256:"));
    let tmp = TempDir::new("pull");
    let state = tmp.sub("state");

    let r = run_pod(&tmp, &state, &reg, &pod(&tmp, &image, None), &[]);
    assert_ran(&r, "pulled");
    let m = messages(&r);
    assert_eq!(
        m[0],
        ("Pulling".into(), format!("Pulling image \"{image}\"")),
        "{m:?}"
    );
    assert_eq!(m[1].0, "Pulled", "{m:?}");
    let pulled = &m[1].1;
    let prefix = format!("Successfully pulled image \"{image}\" in ");
    assert!(pulled.starts_with(&prefix), "{pulled}");
    assert!(
        pulled.contains(" including waiting). Image size: "),
        "{pulled}"
    );
    let size: u64 = pulled
        .rsplit("Image size: ")
        .next()
        .and_then(|t| t.strip_suffix(" bytes."))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{pulled}"));
    assert!(size > 100_000, "{pulled}");
    assert_eq!(m[2].0, "Created", "{m:?}");
    assert_eq!(m[3].0, "Started", "{m:?}");

    let r = run_pod(&tmp, &state, &reg, &pod(&tmp, &image, None), &[]);
    assert_ran(&r, "pulled");
    assert_eq!(
        messages(&r)[0],
        (
            "Pulled".into(),
            format!("Container image \"{image}\" already present on machine")
        ),
        "{}",
        r.dump()
    );

    let r = run_pod(&tmp, &state, &reg, &pod(&tmp, &image, Some("Always")), &[]);
    assert_ran(&r, "pulled");
    let reasons: Vec<_> = messages(&r).into_iter().map(|m| m.0).take(3).collect();
    assert_eq!(reasons, ["Pulling", "Pulled", "Created"], "{}", r.dump());

    let r = run_pod(&tmp, &state, &reg, &pod(&tmp, &image, Some("Never")), &[]);
    assert_ran(&r, "pulled");
}

/// `Never` without the image: `ErrImageNeverPull`, and no pull.
#[test]
fn never_without_the_image() {
    if !registry::ready() {
        return;
    }
    let reg = registry::Registry::start();
    let image = reg.reference("app:absent");
    let tmp = TempDir::new("never");
    let state = tmp.sub("state");
    let r = run_pod(
        &tmp,
        &state,
        &reg,
        &pod(&tmp, &image, Some("Never")),
        &["--stop-after", "1s"],
    );
    let m = messages(&r);
    assert_eq!(
        m[0],
        (
            "ErrImageNeverPull".into(),
            format!("Container image \"{image}\" is not present with pull policy of Never")
        ),
        "{}",
        r.dump()
    );
    assert_eq!(m[1], ("Failed".into(), "Error: ErrImageNeverPull".into()));
    assert!(
        m.iter().all(|(r, _)| r != "Pulling" && r != "Created"),
        "{m:?}"
    );
    let c = r.container_status("p", "c");
    assert_eq!(s(&c["state"]), "waiting", "{c}");
    assert_eq!(s(&c["reason"]), "ErrImageNeverPull", "{c}");
}

/// A tag the registry does not have: `Failed to pull image`, `ErrImagePull`, then the
/// back-off (`Back-off pulling image`, `ImagePullBackOff`) and another pull.
#[test]
fn missing_tag_then_back_off() {
    if !registry::ready() {
        return;
    }
    let reg = registry::Registry::start();
    let image = reg.reference("app:missing");
    let tmp = TempDir::new("missing");
    let state = tmp.sub("state");
    // Back-off scaled to 100 ms, 200 ms, ...: several rounds before the stop.
    let r = run_pod(
        &tmp,
        &state,
        &reg,
        &pod(&tmp, &image, None),
        &["--stop-after", "2s"],
    );
    let m = messages(&r);
    let whole = format!("{}/app:missing", reg.addr);
    assert_eq!(
        m[0],
        ("Pulling".into(), format!("Pulling image \"{image}\"")),
        "{m:?}"
    );
    assert_eq!(
        m[1],
        (
            "Failed".into(),
            format!(
                "Failed to pull image \"{image}\": failed to pull and unpack image \
                 \"{whole}\": failed to resolve reference \"{whole}\": {whole}: not found"
            )
        ),
        "{m:?}"
    );
    assert_eq!(
        m[2],
        ("Failed".into(), "Error: ErrImagePull".into()),
        "{m:?}"
    );
    assert_eq!(
        m[3],
        (
            "BackOff".into(),
            format!("Back-off pulling image \"{image}\"")
        ),
        "{m:?}"
    );
    assert_eq!(
        m[4],
        ("Failed".into(), "Error: ImagePullBackOff".into()),
        "{m:?}"
    );
    assert_eq!(m[5].0, "Pulling", "a second pull after the back-off: {m:?}");
    assert!(m.iter().all(|(r, _)| r != "Created"), "{m:?}");
    let c = r.container_status("p", "c");
    assert_eq!(s(&c["state"]), "waiting", "{c}");
    let reason = s(&c["reason"]);
    assert!(
        reason == "ErrImagePull" || reason == "ImagePullBackOff",
        "{c}"
    );
}

/// As the kubelet's SyncPod: an app container whose image cannot be pulled does not hold
/// back the app container after it, which starts and runs while the first one is in the
/// pull back-off.
#[test]
fn a_missing_image_does_not_hold_back_the_next_container() {
    if !registry::ready() {
        return;
    }
    let reg = registry::Registry::start();
    let present = reg.reference("app:v1");
    rt().block_on(push_image(
        &reg.client(),
        &present,
        host_and_foreign_arch().0,
        "second ran",
        Compression::Gzip,
    ));
    let missing = reg.reference("app:missing");
    let tmp = TempDir::new("next");
    let state = tmp.sub("state");
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  restartPolicy: Never\n  \
         containers:\n  - name: first\n    image: {missing}\n    command: [sh, -c, 'echo first ran']\n  \
         - name: second\n    image: {present}\n    command: [sh, -c, 'cat /etc/marker; echo']\n"
    );
    let path = tmp.path().join("pod.yaml");
    std::fs::write(&path, yaml).unwrap();
    let r = run_pod(&tmp, &state, &reg, path_str(&path), &["--stop-after", "3s"]);
    let of = |c: &str| -> Vec<String> {
        r.events()
            .iter()
            .filter(|e| e["container"] == c)
            .map(|e| s(&e["reason"]))
            .collect()
    };
    let (first, second) = (of("first"), of("second"));
    assert_eq!(first[..3], ["Pulling", "Failed", "Failed"], "{}", r.dump());
    assert!(first.iter().any(|r| r == "BackOff"), "{}", r.dump());
    assert!(!first.iter().any(|r| r == "Created"), "{}", r.dump());
    assert_eq!(
        second[..4],
        ["Pulling", "Pulled", "Created", "Started"],
        "{}",
        r.dump()
    );
    assert_eq!(log_lines(&r), ["second ran"], "{}", r.dump());
    let c = r.container_status("p", "first");
    assert_eq!(s(&c["state"]), "waiting", "{c}");
    let c = r.container_status("p", "second");
    assert_eq!(s(&c["state"]), "terminated", "{c}");
}

/// A reference that does not parse: the kubelet's `InspectFailed` and `InvalidImageName`,
/// no registry asked.
#[test]
fn invalid_reference() {
    if !registry::ready() {
        return;
    }
    let reg = registry::Registry::start();
    let tmp = TempDir::new("invalid");
    let state = tmp.sub("state");
    let r = run_pod(
        &tmp,
        &state,
        &reg,
        &pod(&tmp, "'Bad Image!'", None),
        &["--stop-after", "1s"],
    );
    let m = messages(&r);
    assert_eq!(
        m[0],
        (
            "InspectFailed".into(),
            "Failed to apply default image tag \"Bad Image!\": couldn't parse image reference \
             \"Bad Image!\": invalid reference format"
                .into()
        ),
        "{}",
        r.dump()
    );
    assert_eq!(m[1], ("Failed".into(), "Error: InvalidImageName".into()));
    let c = r.container_status("p", "c");
    assert_eq!(s(&c["reason"]), "InvalidImageName", "{c}");
}

/// A multi-platform index resolves to the host's manifest; a digest reference pulls that
/// exact manifest.
#[test]
fn index_and_digest_references() {
    if !registry::ready() {
        return;
    }
    let reg = registry::Registry::start();
    let (host, foreign) = host_and_foreign_arch();
    let client = reg.client();
    let (index, host_manifest) = rt().block_on(async {
        let h = push_image(
            &client,
            &reg.reference("multi:host"),
            host,
            "host",
            Compression::Gzip,
        )
        .await;
        let f = push_image(
            &client,
            &reg.reference("multi:foreign"),
            foreign,
            "foreign",
            Compression::Gzip,
        )
        .await;
        let i = push_index(
            &client,
            &reg.reference("multi:v1"),
            &[(&f, foreign), (&h, host)],
        )
        .await;
        (i, h)
    });
    let tmp = TempDir::new("index");
    let state = tmp.sub("state");
    let r = run_pod(
        &tmp,
        &state,
        &reg,
        &pod(&tmp, &reg.reference("multi:v1"), None),
        &[],
    );
    assert_ran(&r, "host");

    let by_digest = reg.reference(&format!("multi@{}", host_manifest.digest));
    let r = run_pod(&tmp, &state, &reg, &pod(&tmp, &by_digest, None), &[]);
    assert_ran(&r, "host");
    assert_eq!(messages(&r)[0].0, "Pulling", "{}", r.dump());

    let index_digest = reg.reference(&format!("multi@{}", index.digest));
    let r = run_pod(&tmp, &state, &reg, &pod(&tmp, &index_digest, None), &[]);
    assert_ran(&r, "host");
}

/// zstd-compressed layers unpack like gzip ones.
#[test]
fn zstd_layers() {
    if !registry::ready() {
        return;
    }
    let reg = registry::Registry::start();
    let image = reg.reference("zstd:v1");
    rt().block_on(push_image(
        &reg.client(),
        &image,
        host_and_foreign_arch().0,
        "zstd",
        Compression::Zstd,
    ));
    let tmp = TempDir::new("zstd");
    let state = tmp.sub("state");
    let r = run_pod(&tmp, &state, &reg, &pod(&tmp, &image, None), &[]);
    assert_ran(&r, "zstd");
}

/// An image in `--images DIR` is used as it is, even under `Always`: the registry (which
/// does not have it) is not asked.
#[test]
fn the_images_directory_wins() {
    if !registry::ready() {
        return;
    }
    let reg = registry::Registry::start();
    let tmp = TempDir::new("local");
    let state = tmp.sub("state");
    let images = tmp.sub("images");
    let rootfs = images.join("local/rootfs");
    for d in ["etc", "bin", "proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/cat")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/echo")).unwrap();
    std::fs::write(rootfs.join("etc/marker"), "local").unwrap();
    let image = reg.reference("local:latest");
    let r = run_pod(
        &tmp,
        &state,
        &reg,
        &pod(&tmp, &image, Some("Always")),
        &["--images", path_str(&images)],
    );
    assert_ran(&r, "local");
    let m = messages(&r);
    assert_eq!(
        m[0],
        (
            "Pulled".into(),
            format!("Container image \"{image}\" already present on machine")
        ),
        "{m:?}"
    );
    assert!(m.iter().all(|(r, _)| r != "Pulling"), "{m:?}");
}

/// Pull progress, through the library: every report's bytes grow to the blobs' total, the
/// last one says done with every blob; a second pull (`Always`) finds the image unpacked and
/// reports nothing.
#[test]
fn pull_progress_counts_every_fetched_byte() {
    use std::sync::{Arc, Mutex};
    use wasmhook::backend::runc::pull::{ProgressSink, PullProgress};
    use wasmhook::backend::runc::{RuncBackend, RuncBackendConfig};
    use wasmhook::backend::Backend;

    if !registry::ready() {
        return;
    }
    let reg = registry::Registry::start();
    let image = reg.reference("progress:v1");
    rt().block_on(push_image(
        &reg.client(),
        &image,
        host_and_foreign_arch().0,
        "progress",
        Compression::Gzip,
    ));
    let tmp = TempDir::new("progress");
    let reports: Arc<Mutex<Vec<PullProgress>>> = Arc::default();
    let sink = {
        let reports = reports.clone();
        ProgressSink(Arc::new(move |p: &PullProgress| {
            reports.lock().unwrap().push(p.clone())
        }))
    };
    let backend = RuncBackend::new(RuncBackendConfig {
        state_dir: Some(tmp.sub("state")),
        insecure_registries: vec![reg.addr.clone()],
        pull_progress: Some(sink),
        ..RuncBackendConfig::default()
    });
    let pulled = rt().block_on(backend.pull_image(&image)).expect("pull");

    let first = std::mem::take(&mut *reports.lock().unwrap());
    let last = first.last().expect("progress reports").clone();
    assert!(last.done, "{last:?}");
    assert_eq!(last.blobs_done, last.blobs, "{last:?}");
    assert!(last.total > 0, "{last:?}");
    assert_eq!(last.bytes, last.total, "{last:?}");
    assert_eq!(last.total, pulled.size, "{last:?} {pulled:?}");
    assert!(
        first.windows(2).all(|w| w[0].bytes <= w[1].bytes),
        "bytes never go back: {first:?}"
    );
    assert!(
        first.iter().any(|p| p.bytes > 0 && p.bytes < p.total),
        "reports while the blobs stream in: {first:?}"
    );

    rt().block_on(backend.pull_image(&image))
        .expect("second pull");
    let second = reports.lock().unwrap().clone();
    assert!(second.is_empty(), "{second:?}");
}
