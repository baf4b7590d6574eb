//! Pulling images from OCI registries (anonymously), for `image:` references the image
//! directory does not have. Reference normalisation is the one containerd and the kubelet
//! use (`busybox` is `docker.io/library/busybox:latest`), by `oci-client`.
//!
//! A pull, [`Puller::pull`]:
//! 1. the manifest, by tag or digest (verified against the digest it was asked by); a
//!    multi-platform index is resolved for `linux` and the host's architecture
//!    ([`image::host_arch`]);
//! 2. unless the cache has that manifest unpacked already, the config and every layer blob,
//!    each streamed into a temporary file in `<cache>/blobs/<algorithm>/`, checked against
//!    its digest, then renamed to its digest (a blob that is there is not fetched again);
//! 3. the layers unpacked by [`image::unpack`] (gzip, zstd or plain tar; whiteouts), the one
//!    code path local OCI layouts take too;
//! 4. the reference record `<cache>/refs/<sha256 of the normalised reference>`, JSON
//!    `{"reference": ..., "manifest": "sha256:..."}`, written last (atomically): a record
//!    always names a complete cache entry, so [`Puller::lookup`] finding one means present.
//!
//! Plain HTTP is used only for the registries named by `--insecure-registry`
//! (`HOST[:PORT]`, compared with the reference's registry as written); every other registry
//! is HTTPS. No credentials: pulls are anonymous (a registry's bearer-token challenge is
//! answered anonymously by `oci-client`).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{ImageIndexEntry, OciDescriptor};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::Digest as _;
use tokio_util::io::InspectWriter;

use super::image::{self, Image};
use crate::backend::{BackendError, PulledImage};

/// How far one pull has come: sent to a [`ProgressSink`] as blobs arrive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullProgress {
    /// The image as the pod spec names it.
    pub image: String,
    /// Blobs (config and layers) complete, and how many there are.
    pub blobs_done: usize,
    pub blobs: usize,
    /// Bytes fetched of the blobs to fetch (blobs already in the cache do not count), and
    /// their total.
    pub bytes: u64,
    pub total: u64,
    /// The last report of this pull (after the unpack).
    pub done: bool,
}

/// Where pull progress goes (the CLI draws it on a terminal). Called from the pulling task:
/// it must not block.
#[derive(Clone)]
pub struct ProgressSink(pub Arc<dyn Fn(&PullProgress) + Send + Sync>);

impl std::fmt::Debug for ProgressSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressSink")
    }
}

/// The registry client and the image cache of one backend.
pub(super) struct Puller {
    /// Built by the first pull ([`Puller::client`]): most backends never pull (a local image
    /// directory, or every image cached), and building a client loads the TLS roots.
    client: OnceLock<Client>,
    insecure: Vec<String>,
    cache_dir: PathBuf,
    progress: Option<ProgressSink>,
}

/// The record of one pulled reference (see the module docs).
#[derive(serde::Serialize, serde::Deserialize)]
struct RefRecord {
    reference: String,
    manifest: String,
}

/// Parse `image` as containerd does (`docker.io/library/` for bare names, `:latest` when
/// neither tag nor digest). The error ([`ErrorKind::InvalidArgument`]) has the text of the
/// Go reference parser's, as the kubelet shows it.
///
/// [`ErrorKind::InvalidArgument`]: crate::backend::ErrorKind::InvalidArgument
pub(super) fn parse_reference(image: &str) -> Result<Reference, BackendError> {
    Reference::from_str(image).map_err(|e| {
        BackendError::new(
            crate::backend::ErrorKind::InvalidArgument,
            format!("couldn't parse image reference {:?}: {e}", image),
        )
    })
}

/// The image `reference` names in the cache `cache_dir`, if it has been pulled (blocking:
/// reads files).
pub(super) fn lookup(cache_dir: &Path, reference: &Reference) -> Result<Option<Image>, String> {
    let path = record_path(cache_dir, reference);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let record: RefRecord =
        serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let digest = oci_spec::image::Digest::from_str(&record.manifest)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    image::cached(cache_dir, &image::cache_key(&digest))
}

fn record_path(cache_dir: &Path, reference: &Reference) -> PathBuf {
    let hash = sha2::Sha256::digest(reference.whole().as_bytes());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    cache_dir.join("refs").join(hex)
}

impl Puller {
    /// A client that speaks plain HTTP to the registries in `insecure` (`HOST[:PORT]`) and
    /// HTTPS to every other one; pulled images go to `cache_dir`.
    pub(super) fn new(
        insecure: &[String],
        cache_dir: PathBuf,
        progress: Option<ProgressSink>,
    ) -> Self {
        Puller {
            client: OnceLock::new(),
            insecure: insecure.to_vec(),
            cache_dir,
            progress,
        }
    }

    /// The registry client, built on first use.
    fn client(&self) -> &Client {
        self.client.get_or_init(|| {
            // reqwest takes rustls's process-wide provider. wasmhook's TLS is ring (httpGet
            // handlers too): install it unless the embedding program chose one already (then
            // this is a no-op and theirs is used).
            let _ = rustls::crypto::ring::default_provider().install_default();
            Client::new(ClientConfig {
                protocol: ClientProtocol::HttpsExcept(self.insecure.clone()),
                platform_resolver: Some(Box::new(host_platform)),
                connect_timeout: Some(std::time::Duration::from_secs(30)),
                read_timeout: Some(std::time::Duration::from_secs(120)),
                ..ClientConfig::default()
            })
        })
    }

    /// Pull `image` (see the module docs). Errors read as containerd's do in the kubelet's
    /// `Failed to pull image` event.
    pub(super) async fn pull(&self, image: &str) -> Result<PulledImage, BackendError> {
        let started = Instant::now();
        let reference = parse_reference(image)?;
        let whole = reference.whole();
        let fail = |what: String| {
            BackendError::other(format!(
                "failed to pull and unpack image \"{whole}\": {what}"
            ))
        };
        let (manifest, digest) = self
            .client()
            .pull_image_manifest(&reference, &RegistryAuth::Anonymous)
            .await
            .map_err(|e| fail(resolve_error(&whole, e)))?;
        let manifest_digest = oci_spec::image::Digest::from_str(&digest)
            .map_err(|e| fail(format!("manifest digest {digest:?}: {e}")))?;
        let key = image::cache_key(&manifest_digest);
        let blobs: Vec<&OciDescriptor> = std::iter::once(&manifest.config)
            .chain(&manifest.layers)
            .collect();
        let size = blobs
            .iter()
            .map(|d| u64::try_from(d.size).unwrap_or(0))
            .sum();
        let cache = self.cache_dir.clone();
        let cached = {
            let (cache, key) = (cache.clone(), key.clone());
            tokio::task::spawn_blocking(move || image::cached(&cache, &key))
                .await
                .map_err(|e| fail(e.to_string()))?
                .map_err(fail)?
        };
        if cached.is_none() {
            let mut paths = Vec::with_capacity(blobs.len());
            let mut progress = PullProgress {
                image: image.to_string(),
                blobs_done: 0,
                blobs: blobs.len(),
                bytes: 0,
                total: 0,
                done: false,
            };
            let mut missing = Vec::new();
            for d in &blobs {
                let path = self.blob_path(&d.digest).map_err(&fail)?;
                if !path.is_file() {
                    progress.total += u64::try_from(d.size).unwrap_or(0);
                    missing.push(*d);
                }
                paths.push(path);
            }
            progress.blobs_done = blobs.len() - missing.len();
            self.report(&progress);
            for d in missing {
                self.fetch_blob(&reference, d, &mut progress)
                    .await
                    .map_err(&fail)?;
                progress.blobs_done += 1;
                self.report(&progress);
            }
            let config_json = tokio::fs::read(&paths[0])
                .await
                .map_err(|e| fail(format!("{}: {e}", paths[0].display())))?;
            let (cache, key) = (cache.clone(), key.clone());
            tokio::task::spawn_blocking(move || {
                image::unpack(&cache, &key, &paths[1..], &config_json)
            })
            .await
            .map_err(|e| fail(e.to_string()))?
            .map_err(|e| fail(format!("failed to extract layer: {e}")))?;
            progress.done = true;
            self.report(&progress);
        }
        let record = serde_json::to_vec(&RefRecord {
            reference: whole.clone(),
            manifest: digest,
        })
        .map_err(|e| fail(e.to_string()))?;
        let path = record_path(&self.cache_dir, &reference);
        tokio::task::spawn_blocking(move || image::write_atomic(&path, &record))
            .await
            .map_err(|e| fail(e.to_string()))?
            .map_err(fail)?;
        Ok(PulledImage {
            size,
            duration: started.elapsed(),
        })
    }

    fn report(&self, p: &PullProgress) {
        if let Some(sink) = &self.progress {
            (sink.0)(p);
        }
    }

    /// `<cache>/blobs/<algorithm>/<hex>`; an error for a digest that is not one.
    fn blob_path(&self, digest: &str) -> Result<PathBuf, String> {
        let d = oci_spec::image::Digest::from_str(digest)
            .map_err(|e| format!("invalid digest {digest:?}: {e}"))?;
        Ok(self
            .cache_dir
            .join("blobs")
            .join(d.algorithm().to_string())
            .join(d.digest()))
    }

    /// Stream blob `d` into the blob store, verified against its digest by `oci-client`
    /// before it is renamed into place.
    async fn fetch_blob(
        &self,
        reference: &Reference,
        d: &OciDescriptor,
        progress: &mut PullProgress,
    ) -> Result<(), String> {
        let path = self.blob_path(&d.digest)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let tmp = tempfile::Builder::new()
            .prefix(".fetch-")
            .tempfile_in(dir)
            .map_err(|e| format!("creating a file in {}: {e}", dir.display()))?;
        let file = tokio::fs::File::from_std(
            tmp.reopen()
                .map_err(|e| format!("{}: {e}", tmp.path().display()))?,
        );
        // Count the bytes into the pull's progress as they are written.
        let sink = self.progress.as_ref();
        let mut out = InspectWriter::new(file, |written: &[u8]| {
            progress.bytes += written.len() as u64;
            if let Some(sink) = sink {
                (sink.0)(progress);
            }
        });
        self.client()
            .pull_blob(reference, d, &mut out)
            .await
            .map_err(|e| format!("failed to fetch {}: {}", d.digest, image::with_causes(&e)))?;
        tmp.persist(&path)
            .map_err(|e| format!("storing {}: {e}", path.display()))?;
        Ok(())
    }
}

/// The manifest failure as containerd words it: `failed to resolve reference "R": R: not
/// found` when the registry does not have it.
fn resolve_error(whole: &str, e: OciDistributionError) -> String {
    let not_found = match &e {
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|x| {
            matches!(
                x.code,
                OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown
            )
        }),
        OciDistributionError::ServerError { code, .. } => *code == 404,
        _ => false,
    };
    if not_found {
        format!("failed to resolve reference \"{whole}\": {whole}: not found")
    } else {
        format!(
            "failed to resolve reference \"{whole}\": {}",
            image::with_causes(&e)
        )
    }
}

/// The index entry for `linux` and the host's architecture (see [`image::host_arch`]).
fn host_platform(entries: &[ImageIndexEntry]) -> Option<String> {
    let arch = image::host_arch();
    entries
        .iter()
        .find(|e| {
            e.platform
                .as_ref()
                .is_some_and(|p| p.os.to_string() == "linux" && p.architecture.to_string() == arch)
        })
        .map(|e| e.digest.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_normalised_as_containerd_does() {
        let whole = |s: &str| parse_reference(s).unwrap().whole();
        assert_eq!(whole("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(
            whole("docker.io/library/nginx:1.27"),
            "docker.io/library/nginx:1.27"
        );
        assert_eq!(whole("127.0.0.1:5000/app:v1"), "127.0.0.1:5000/app:v1");
        let digest = format!("localhost:5000/app@sha256:{}", "a".repeat(64));
        assert_eq!(whole(&digest), digest);
        let e = parse_reference("Not A Reference").unwrap_err();
        assert_eq!(e.kind(), crate::backend::ErrorKind::InvalidArgument);
        assert!(
            e.message()
                .starts_with("couldn't parse image reference \"Not A Reference\": "),
            "{e}"
        );
    }

    #[test]
    fn host_platform_picks_linux_and_the_host_arch() {
        let entry = |os: &str, arch: &str, digest: &str| -> ImageIndexEntry {
            serde_json::from_value(serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest, "size": 1,
                "platform": {"os": os, "architecture": arch},
            }))
            .unwrap()
        };
        let foreign = if image::host_arch() == "s390x" {
            "arm64"
        } else {
            "s390x"
        };
        let entries = [
            entry("linux", foreign, "sha256:f"),
            entry("windows", image::host_arch(), "sha256:w"),
            entry("linux", image::host_arch(), "sha256:h"),
        ];
        assert_eq!(host_platform(&entries).as_deref(), Some("sha256:h"));
        assert_eq!(host_platform(&entries[..2]), None);
    }
}
