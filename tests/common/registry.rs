//! A real OCI registry for the pull tests: Debian's `docker-registry` (the distribution
//! registry) on `127.0.0.1` with a free port, a temporary config file and storage. It is
//! killed and reaped when the [`Registry`] is dropped (also when a test panics), and it gets
//! SIGKILL if the test thread that started it dies first (`PR_SET_PDEATHSIG`).
//!
//! Images are built from the same busybox layer as `scripts/make-test-image.sh` writes (its
//! OCI layout, made once per run), plus a small layer of marker files, and pushed with
//! `oci-client`.

use std::io::Read;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{
    ImageIndexEntry, OciImageIndex, OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::Digest as _;

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// Whether the pull tests can run: root, runc, `ip`, busybox and the registry binary.
/// Panics when `WASMHOOK_REQUIRE_RUNC` or `WASMHOOK_REQUIRE_REGISTRY` is set and a piece is
/// missing; otherwise prints why and returns `false`.
pub fn ready() -> bool {
    let problem = super::runc_problem().or_else(|| {
        (!Path::new(REGISTRY_BIN).exists())
            .then(|| format!("{REGISTRY_BIN} is missing (apt-get install docker-registry)"))
    });
    super::can_run(
        "registry pull test",
        &["WASMHOOK_REQUIRE_REGISTRY", "WASMHOOK_REQUIRE_RUNC"],
        problem,
    )
}

/// A running registry; see the module docs.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`, as image references name it.
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> Registry {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: {addr}\n",
                dir.path().join("storage").display()
            ),
        )
        .expect("write the registry config");
        let mut cmd = Command::new(REGISTRY_BIN);
        cmd.arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("start docker-registry");
        let mut reg = Registry {
            child,
            addr,
            _dir: dir,
        };
        reg.wait_up();
        reg
    }

    /// Wait until `GET /v2/` answers (the port was free a moment ago; another process could
    /// take it, which shows as the registry exiting).
    fn wait_up(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                panic!("docker-registry exited ({st}): {err}");
            }
            if let Ok(mut s) = TcpStream::connect(&self.addr) {
                use std::io::Write;
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let req = format!("GET /v2/ HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr);
                let mut resp = String::new();
                let _ = s
                    .write_all(req.as_bytes())
                    .and_then(|()| s.read_to_string(&mut resp));
                if resp.starts_with("HTTP/1.0 200") || resp.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "docker-registry did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A plain-HTTP client for this registry.
    pub fn client(&self) -> Client {
        // As `runc/pull.rs`: reqwest uses rustls's process-wide provider, ring here.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Client::new(ClientConfig {
            protocol: ClientProtocol::Http,
            ..ClientConfig::default()
        })
    }

    /// `127.0.0.1:PORT/<name>`.
    pub fn reference(&self, name: &str) -> String {
        format!("{}/{name}", self.addr)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A pushed manifest: its digest and size, for digest references and indexes.
pub struct Pushed {
    pub digest: String,
    pub size: i64,
}

/// How the image's layers are compressed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Zstd,
}

/// Push a busybox image to `reference`: the busybox layer, then a layer with
/// `/etc/marker` holding `marker`; its config says `linux/<arch>`.
pub async fn push_image(
    client: &Client,
    reference: &str,
    arch: &str,
    marker: &str,
    compression: Compression,
) -> Pushed {
    let reference: Reference = reference.parse().expect("reference");
    let busybox = busybox_tar();
    let marker_tar = marker_layer(marker);
    let media = match compression {
        Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
        Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
    };
    let compress = |t: &[u8]| match compression {
        Compression::Gzip => gzip(t),
        Compression::Zstd => zstd(t),
    };
    let layers = [&busybox[..], &marker_tar[..]]
        .iter()
        .map(|t| ImageLayer::new(compress(t), media.to_string(), None))
        .collect::<Vec<_>>();
    let config = serde_json::json!({
        "architecture": arch, "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"], "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [sha256(&busybox), sha256(&marker_tar)]},
    });
    let config = Config::oci_v1(serde_json::to_vec(&config).unwrap(), None);
    client
        .push(&reference, &layers, config, &RegistryAuth::Anonymous, None)
        .await
        .expect("push the image");
    manifest_of(client, &reference, OCI_IMAGE_MEDIA_TYPE).await
}

/// Push an index to `reference` of the manifests `entries` (digest, size, arch), all linux.
pub async fn push_index(client: &Client, reference: &str, entries: &[(&Pushed, &str)]) -> Pushed {
    let reference: Reference = reference.parse().expect("reference");
    let manifests = entries
        .iter()
        .map(|(p, arch)| {
            serde_json::from_value::<ImageIndexEntry>(serde_json::json!({
                "mediaType": OCI_IMAGE_MEDIA_TYPE, "digest": p.digest, "size": p.size,
                "platform": {"os": "linux", "architecture": arch},
            }))
            .unwrap()
        })
        .collect();
    let index = OciImageIndex {
        schema_version: 2,
        media_type: Some(OCI_IMAGE_INDEX_MEDIA_TYPE.to_string()),
        manifests,
        artifact_type: None,
        annotations: None,
    };
    client
        .push_manifest_list(&reference, &RegistryAuth::Anonymous, index)
        .await
        .expect("push the index");
    manifest_of(client, &reference, OCI_IMAGE_INDEX_MEDIA_TYPE).await
}

async fn manifest_of(client: &Client, reference: &Reference, media: &str) -> Pushed {
    let (bytes, digest) = client
        .pull_manifest_raw(reference, &RegistryAuth::Anonymous, &[media])
        .await
        .expect("the pushed manifest");
    Pushed {
        digest,
        size: bytes.len() as i64,
    }
}

/// The uncompressed busybox layer of `scripts/make-test-image.sh`'s image, built once per
/// run into cargo's scratch directory for integration tests.
fn busybox_tar() -> Vec<u8> {
    static LAYOUT: OnceLock<PathBuf> = OnceLock::new();
    let layout = LAYOUT.get_or_init(|| {
        let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("registry-test-images");
        super::run_script("make-test-image.sh", &[&d]);
        d.join("busybox")
    });
    let json = |p: PathBuf| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).expect("layout file")).expect("layout JSON")
    };
    let blob = |digest: &serde_json::Value| {
        let d = digest.as_str().expect("digest");
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let index = json(layout.join("index.json"));
    let manifest = json(blob(&index["manifests"][0]["digest"]));
    let gz = std::fs::read(blob(&manifest["layers"][0]["digest"])).expect("layer");
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut tar)
        .expect("gunzip the layer");
    tar
}

fn marker_layer(marker: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(marker.len() as u64);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    b.append_data(&mut h, "etc/marker", marker.as_bytes())
        .expect("tar");
    b.into_inner().expect("tar")
}

fn sha256(data: &[u8]) -> String {
    let h = sha2::Sha256::digest(data);
    format!(
        "sha256:{}",
        h.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

fn zstd(data: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
}

/// The host's architecture as OCI names it, and one that is not it.
pub fn host_and_foreign_arch() -> (&'static str, &'static str) {
    let host = wasmhook::backend::runc::image::host_arch();
    (host, if host == "s390x" { "arm64" } else { "s390x" })
}
