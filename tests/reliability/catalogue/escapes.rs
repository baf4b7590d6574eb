//! Hostile hooks that reach for what the sandbox withholds: the network beyond the pod,
//! odd exit codes and oversized arguments, paths out of their volumes.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_network_reach_beyond_the_pod() {
    // Under `pod`, a hook tries the cloud metadata endpoint, another host, the node's DNS and a
    // redirect-free HTTP request off the pod: every attempt refused by the host and named in
    // the report; the hook itself ends normally.
    let netprobe = repo().join("examples/hooks/bin/netprobe.component.wasm");
    let probes = [
        "tcp:169.254.169.254:443",
        "tcp:10.0.0.1:22",
        "tcp:[2001:db8::1]:443",
        "lookup:example.com",
        "http:http://169.254.169.254/latest/meta-data/",
        "bind:0.0.0.0:2222",
    ];
    let c = Case::new(
        "network reach beyond the pod",
        "postStart",
        &netprobe,
        &probes,
    )
    .annotate("wasmhook.dev/hook-network", "pod");
    let r = run_case(&c).await;
    let h = r.hostile.hook("postStart").unwrap();
    assert_eq!(h.error, None, "netprobe ends normally: {:?}", h.error);
    let output = String::from_utf8_lossy(&h.output);
    let refused = output
        .lines()
        .filter(|l| l.starts_with("[wasmhook: network policy refused "))
        .count();
    assert_eq!(refused, probes.len(), "{output}");
    for line in output.lines().take(probes.len()) {
        assert!(
            line.ends_with(" err access-denied")
                || line.ends_with(" err destination-ip-prohibited"),
            "{output}"
        );
    }
    emit(
        c.name,
        "each attempt refused and reported",
        &format!(
            "{refused} of {} attempts refused, each named in the hook's output",
            probes.len()
        ),
        r.hook_ms,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_proc_exit_odd_codes() {
    for (file, code) in [
        ("exit255.wat", "255"),
        ("exit126.wat", "126"),
        ("exitneg1.wat", "-1"),
        ("exit1000.wat", "1000"),
    ] {
        let name = format!("proc_exit({code})");
        let c = Case::new(&name, "postStart", &hostile(file), &[]);
        let r = run_case(&c).await;
        let observed = assert_failed(&c, &r, "command '");
        // wasmtime-wasi refuses codes outside [0, 126) (a trap that loses the code); the
        // runtime's own proc_exit keeps them, as a process exit status would.
        assert!(
            observed.contains(&format!("exited with {code}:")),
            "{name}: {observed}"
        );
        emit(&name, &format!("exited with {code}"), &observed, r.hook_ms);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_huge_argv_and_env() {
    // 1 MiB of argv through the manifest: 1024 arguments of 1 KiB.
    let big: Vec<String> = (0..1024)
        .map(|i| format!("{i:04}{}", "a".repeat(1020)))
        .collect();
    let args: Vec<&str> = big.iter().map(String::as_str).collect();
    let c = Case::new("1 MiB argv", "postStart", &hostile("bigargs.wat"), &args);
    let r = run_case(&c).await;
    let h = r.hostile.hook("postStart").unwrap();
    assert_eq!(h.error, None, "1 MiB argv must work: {:?}", h.error);
    emit(c.name, "works", "succeeded", r.hook_ms);

    // 1 MiB of env through the container's env: 1024 variables of 1 KiB.
    let mut c = Case::new("1 MiB env", "postStart", &hostile("bigargs.wat"), &[]);
    c.container_extra = "    env:\n".to_string()
        + &(0..1024)
            .map(|i| format!("    - name: V{i}\n      value: \"{}\"\n", "e".repeat(1020)))
            .collect::<String>();
    let r = run_case(&c).await;
    let h = r.hostile.hook("postStart").unwrap();
    assert_eq!(h.error, None, "1 MiB env must work: {:?}", h.error);
    emit(c.name, "works", "succeeded", r.hook_ms);

    // 8 MiB of argv: more than the module can hold; it must fail clearly, not crash.
    let big: Vec<String> = (0..8192)
        .map(|i| format!("{i:05}{}", "b".repeat(1019)))
        .collect();
    let args: Vec<&str> = big.iter().map(String::as_str).collect();
    let c = Case::new("8 MiB argv", "postStart", &hostile("bigargs.wat"), &args);
    let r = run_case(&c).await;
    let observed = assert_failed(&c, &r, "command '");
    // The message repeats the 8 MiB command line: keep what follows it.
    let cause = observed
        .rsplit_once("' ")
        .map(|(_, rest)| format!("command '<8 MiB argv>' {rest}"))
        .unwrap_or(observed);
    emit(c.name, "fails clearly", &cause, r.hook_ms);
}

/// The volume and the host directory around it, with things planted in the volume.
struct Planted {
    tmp: TempDir,
    vol: PathBuf,
    outside: PathBuf,
}

fn planted(tag: &str) -> Planted {
    let tmp = TempDir::new(tag);
    let vol = tmp.sub("vol");
    let outside = tmp.sub("outside");
    std::fs::write(outside.join("secret"), "secret\n").unwrap();
    std::os::unix::fs::symlink(&outside, vol.join("dirlink")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret"), vol.join("filelink")).unwrap();
    std::os::unix::fs::symlink("../outside/secret", vol.join("rellink")).unwrap();
    std::fs::hard_link(outside.join("secret"), vol.join("hardlink")).unwrap();
    Planted { tmp, vol, outside }
}

fn volume_case<'a>(name: &'a str, pl: &Planted, path: &str, read_only: bool) -> Case<'a> {
    Case::new(name, "postStart", &wat("open.wat"), &[path]).with_volume(&pl.vol, read_only)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_preopen_escapes() {
    let pl = planted("escape");
    let cases = [
        ("write ../outside/new", "../outside/new"),
        (
            "write /etc/wasmhook-escape (absolute)",
            "/etc/wasmhook-escape",
        ),
        ("write through dir symlink to outside", "dirlink/new"),
        ("write through file symlink to outside", "filelink"),
        ("write through relative symlink ../outside", "rellink"),
    ];
    for (name, path) in cases {
        let c = volume_case(name, &pl, path, false);
        let r = run_case(&c).await;
        let observed = assert_failed(&c, &r, "exited with");
        assert_eq!(
            std::fs::read_to_string(pl.outside.join("secret")).unwrap(),
            "secret\n",
            "{name}: the file outside changed"
        );
        assert!(!pl.outside.join("new").exists(), "{name}: created outside");
        assert!(!Path::new("/etc/wasmhook-escape").exists(), "{name}");
        emit(name, "refused (WASI errno)", &observed, r.hook_ms);
    }
    let _ = &pl.tmp;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_hard_link_out_of_the_volume() {
    // A hard link is a second name of the same inode: nothing about it says "outside", and
    // no path resolution can refuse it. If the host (or a container: it shares the volume
    // and the host filesystem) plants one, a hook writing the volume writes the file outside.
    // This is the same as for a real container with that volume; it is recorded as a finding.
    let pl = planted("hardlink");
    let c = volume_case("write through planted HARD link", &pl, "hardlink", false);
    let r = run_case(&c).await;
    let after = std::fs::read_to_string(pl.outside.join("secret")).unwrap();
    let observed = match r.hostile.hook("postStart").and_then(|h| h.error.clone()) {
        None if after == "ok\n" => "succeeded: the file OUTSIDE the volume was overwritten".into(),
        None => format!("succeeded, outside file now {after:?}"),
        Some(e) => format!("refused: {e}"),
    };
    emit(
        c.name,
        "leak (inherent to hard links)",
        &observed,
        r.hook_ms,
    );

    // Read-only mounts refuse writes, hard link or not.
    let pl = planted("readonly");
    for (name, path) in [
        ("write to readOnly mount", "new"),
        ("write hard link on readOnly mount", "hardlink"),
    ] {
        let c = volume_case(name, &pl, path, true);
        let r = run_case(&c).await;
        let observed = assert_failed(&c, &r, "exited with");
        assert!(!pl.vol.join("new").exists());
        assert_eq!(
            std::fs::read_to_string(pl.outside.join("secret")).unwrap(),
            "secret\n"
        );
        emit(name, "refused (WASI errno)", &observed, r.hook_ms);
    }
}
