//! The image store of the runc backend: `image:` names resolved in a local directory
//! (`--images DIR`) or pulled from a registry ([`super::pull`]), unpacked (with whiteouts)
//! once per manifest digest into the cache directory, `<state_dir>/images`.
//!
//! For `image: NAME[:TAG]` (a registry prefix like `docker.io/library/` is tried in full,
//! then by its last path component), in the images directory, in order:
//! 1. `NAME/` holding an OCI image layout (`oci-layout` + `index.json`): the manifest whose
//!    `org.opencontainers.image.ref.name` is `TAG` (default `latest`), or the only one
//!    when it has no such name;
//! 2. `NAME/rootfs/`, a plain root filesystem;
//! 3. `NAME/` itself when it has a `bin/` directory, a plain root filesystem;
//! 4. an OCI layout at the top of the directory, manifest by ref name `NAME:TAG` or `TAG`.
//!
//! An image found there is used as it is, whatever the pull policy: no registry is asked.
//!
//! The cache: `<cache>/<algorithm>-<hex>/` per manifest digest, holding `rootfs/` (the
//! layers applied in order) and `config.json` (the image configuration). Both are written in
//! a temporary directory renamed into place, so a cache entry that exists is complete; two
//! pods (or two wasmhook processes) unpacking the same image at once both end with the one
//! entry. Pulled images also keep their blobs (`<cache>/blobs/<algorithm>/<hex>`, each
//! verified against its digest before it is renamed there) and one record per reference
//! (`<cache>/refs/`, see [`super::pull`]).

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Component, Path, PathBuf};

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";

/// A resolved image: a root filesystem (read-only for us: containers get a copy-on-write
/// view) and the image's runtime defaults.
#[derive(Clone, Debug, Default)]
pub struct Image {
    pub rootfs: PathBuf,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
}

/// Why [`resolve`] gave no image.
#[derive(Debug, PartialEq, Eq)]
pub enum LocalError {
    /// The directory does not have the image; the message says what was tried.
    NotFound(String),
    /// The directory has it, but it cannot be used (a broken layout, a failed unpack).
    Failed(String),
}

impl std::fmt::Display for LocalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LocalError::NotFound(m) | LocalError::Failed(m) => f.write_str(m),
        }
    }
}

/// Resolve `image` in `images_dir`, unpacking OCI layouts into `cache_dir/<digest>`.
pub fn resolve(images_dir: &Path, image: &str, cache_dir: &Path) -> Result<Image, LocalError> {
    let (repo, tag) = split_reference(image);
    let mut names = vec![repo.to_string()];
    if let Some(last) = repo.rsplit('/').next() {
        if last != repo {
            names.push(last.to_string());
        }
    }
    let mut tried = Vec::new();
    for name in &names {
        let d = images_dir.join(name);
        if d.join("index.json").is_file() {
            return from_layout(&d, &[tag], image, cache_dir).map_err(LocalError::Failed);
        }
        tried.push(format!("{}/index.json", d.display()));
        if d.join("rootfs").is_dir() {
            return Ok(plain(d.join("rootfs")));
        }
        tried.push(format!("{}/rootfs/", d.display()));
        if d.join("bin").is_dir() {
            return Ok(plain(d));
        }
        tried.push(format!("{}/bin/", d.display()));
    }
    if images_dir.join("index.json").is_file() {
        let full = format!("{repo}:{tag}");
        match from_layout(images_dir, &[&full, tag], image, cache_dir) {
            Err(e) if e.contains("no manifest") => tried.push(e),
            r => return r.map_err(LocalError::Failed),
        }
    }
    Err(LocalError::NotFound(format!(
        "image \"{image}\" not found in the image directory {} (tried {})",
        images_dir.display(),
        tried.join(", ")
    )))
}

fn plain(rootfs: PathBuf) -> Image {
    Image {
        rootfs,
        ..Image::default()
    }
}

/// `repo[:tag][@digest]` → (repo, tag), tag `latest` by default.
fn split_reference(image: &str) -> (&str, &str) {
    let image = image.split('@').next().unwrap_or(image);
    match image.rfind(':') {
        Some(i) if !image[i + 1..].contains('/') => (&image[..i], &image[i + 1..]),
        _ => (image, "latest"),
    }
}

fn blob_path(layout: &Path, d: &Descriptor) -> Result<PathBuf, String> {
    let digest = d.digest();
    let hex = digest.digest();
    let algo = digest.algorithm().to_string();
    if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!("invalid digest {digest}"));
    }
    let p = layout.join("blobs").join(algo).join(hex);
    if !p.is_file() {
        return Err(format!("blob {} is missing ({})", digest, p.display()));
    }
    Ok(p)
}

fn from_layout(
    layout: &Path,
    refs: &[&str],
    image: &str,
    cache_dir: &Path,
) -> Result<Image, String> {
    let index_path = layout.join("index.json");
    let index = ImageIndex::from_file(&index_path)
        .map_err(|e| format!("image \"{image}\": {}: {e}", index_path.display()))?;
    let manifests = index.manifests();
    let named = |d: &&Descriptor| {
        d.annotations()
            .as_ref()
            .and_then(|a| a.get(REF_NAME))
            .is_some_and(|n| refs.contains(&n.as_str()))
    };
    let desc = match manifests.iter().find(named) {
        Some(d) => d.clone(),
        // An unnamed single manifest is the image whatever the tag (`skopeo copy` without
        // a tag writes one); a named one must match.
        None if manifests.len() == 1
            && manifests[0]
                .annotations()
                .as_ref()
                .is_none_or(|a| !a.contains_key(REF_NAME)) =>
        {
            manifests[0].clone()
        }
        None => {
            return Err(format!(
                "image \"{image}\": no manifest named {refs:?} in {}",
                index_path.display()
            ))
        }
    };
    let desc = pick_platform(layout, desc, image)?;
    let manifest_path = blob_path(layout, &desc).map_err(|e| format!("image \"{image}\": {e}"))?;
    let manifest = ImageManifest::from_file(&manifest_path)
        .map_err(|e| format!("image \"{image}\": manifest: {e}"))?;
    let config_path =
        blob_path(layout, manifest.config()).map_err(|e| format!("image \"{image}\": {e}"))?;
    let config = ImageConfiguration::from_file(&config_path)
        .map_err(|e| format!("image \"{image}\": config: {e}"))?;

    let config_json = std::fs::read(&config_path)
        .map_err(|e| format!("image \"{image}\": {}: {e}", config_path.display()))?;
    let layers = manifest
        .layers()
        .iter()
        .map(|l| blob_path(layout, l).map_err(|e| format!("image \"{image}\": {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let target = unpack(cache_dir, &cache_key(desc.digest()), &layers, &config_json)
        .map_err(|e| format!("image \"{image}\": {e}"))?;
    Ok(from_config(target.join("rootfs"), &config))
}

/// The cache directory name of the image whose manifest has `digest`: `<algorithm>-<hex>`.
pub fn cache_key(digest: &oci_spec::image::Digest) -> String {
    format!("{}-{}", digest.algorithm(), digest.digest())
}

/// The cached image `cache_dir/<key>`, when it has been unpacked (see the module docs).
pub fn cached(cache_dir: &Path, key: &str) -> Result<Option<Image>, String> {
    let dir = cache_dir.join(key);
    if !dir.join("rootfs").is_dir() {
        return Ok(None);
    }
    let path = dir.join("config.json");
    let config = ImageConfiguration::from_file(&path)
        .map_err(|e| format!("image configuration {}: {e}", path.display()))?;
    Ok(Some(from_config(dir.join("rootfs"), &config)))
}

/// Unpack `layers` (blob files, applied in order) into `cache_dir/<key>/rootfs` and store
/// `config_json` as `cache_dir/<key>/config.json`, unless that entry exists already. The
/// entry appears complete or not at all. Returns `cache_dir/<key>`.
pub fn unpack(
    cache_dir: &Path,
    key: &str,
    layers: &[PathBuf],
    config_json: &[u8],
) -> Result<PathBuf, String> {
    let target = cache_dir.join(key);
    if target.join("rootfs").is_dir() {
        if !target.join("config.json").is_file() {
            // An entry unpacked before the configuration was kept with it.
            write_atomic(&target.join("config.json"), config_json)?;
        }
        return Ok(target);
    }
    std::fs::create_dir_all(cache_dir)
        .map_err(|e| format!("creating {}: {e}", cache_dir.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".unpack-")
        .tempdir_in(cache_dir)
        .map_err(|e| format!("creating a directory in {}: {e}", cache_dir.display()))?;
    let rootfs = tmp.path().join("rootfs");
    std::fs::create_dir(&rootfs).map_err(|e| e.to_string())?;
    for p in layers {
        let f = File::open(p).map_err(|e| format!("{}: {e}", p.display()))?;
        let name = p.file_name().unwrap_or_default().to_string_lossy();
        apply_layer(&rootfs, open_layer(f)?)
            .map_err(|e| format!("layer {name}: {}", with_causes(&e)))?;
    }
    std::fs::write(tmp.path().join("config.json"), config_json)
        .map_err(|e| format!("writing the image configuration: {e}"))?;
    // Another process (or task) may have won the race; either result is the same.
    let tmp = tmp.keep();
    if std::fs::rename(&tmp, &target).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
        if !target.join("rootfs").is_dir() {
            return Err(format!("cannot store {}", target.display()));
        }
    }
    Ok(target)
}

/// `e` and its sources, each not already in the text (`tar` says "failed to unpack `path`"
/// and keeps the why below; a registry's connection refused is several levels down).
pub(super) fn with_causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Write `path` whole or not at all (a temporary file in the same directory, renamed).
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| format!("creating a file in {}: {e}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, data)
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(())
}

fn from_config(rootfs: PathBuf, config: &ImageConfiguration) -> Image {
    let c = config.config().clone().unwrap_or_default();
    Image {
        rootfs,
        entrypoint: c.entrypoint().clone().unwrap_or_default(),
        cmd: c.cmd().clone().unwrap_or_default(),
        env: c.env().clone().unwrap_or_default(),
        working_dir: c.working_dir().clone().filter(|w| !w.is_empty()),
    }
}

/// The host's platform architecture as OCI names it (`amd64`, `arm64`, ...): what a
/// multi-platform index is resolved for, with the OS `linux`.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// An index pointing at a nested image index: take the host's platform.
fn pick_platform(layout: &Path, desc: Descriptor, image: &str) -> Result<Descriptor, String> {
    if *desc.media_type() != MediaType::ImageIndex {
        return Ok(desc);
    }
    let p = blob_path(layout, &desc).map_err(|e| format!("image \"{image}\": {e}"))?;
    let index = ImageIndex::from_file(&p).map_err(|e| format!("image \"{image}\": {e}"))?;
    let arch = host_arch();
    index
        .manifests()
        .iter()
        .find(|m| {
            m.platform().as_ref().is_some_and(|p| {
                p.os().to_string() == "linux" && p.architecture().to_string() == arch
            })
        })
        .cloned()
        .ok_or_else(|| format!("image \"{image}\": no manifest for linux/{arch}"))
}

/// A layer blob as a tar stream: gzip or zstd detected by their magic bytes (whatever the
/// media type says, as containerd does), else plain tar.
pub fn open_layer(f: File) -> Result<Box<dyn Read>, String> {
    let mut r = BufReader::new(f);
    let head = std::io::BufRead::fill_buf(&mut r).map_err(|e| e.to_string())?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(r)))
    } else if head.starts_with(&ZSTD_MAGIC) {
        Ok(Box::new(ZstdFrames {
            input: Some(r),
            frame: None,
        }))
    } else {
        Ok(Box::new(r))
    }
}

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// A zstd stream of one or more frames, decoded (a layer compressed in chunks is several
/// frames one after the other; ruzstd's decoder reads one).
struct ZstdFrames<R: std::io::BufRead> {
    input: Option<R>,
    frame: Option<ruzstd::decoding::StreamingDecoder<R, ruzstd::decoding::FrameDecoder>>,
}

impl<R: std::io::BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let Some(frame) = &mut self.frame {
                let n = frame.read(buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
                self.input = self.frame.take().map(|f| f.into_inner());
            }
            let Some(mut input) = self.input.take() else {
                return Ok(0);
            };
            if input.fill_buf()?.is_empty() {
                return Ok(0); // the end of the last frame
            }
            let frame = ruzstd::decoding::StreamingDecoder::new(input)
                .map_err(|e| std::io::Error::other(format!("zstd: {e}")))?;
            self.frame = Some(frame);
        }
    }
}

/// Apply one layer (a tar stream) on top of `rootfs`, honouring whiteouts: `.wh.NAME`
/// deletes `NAME` from the layers below, `.wh..wh..opq` empties its directory of what the
/// layers below put there. Paths never escape `rootfs` (`..` rejected, symlinked parents
/// checked by `tar`'s `unpack_in`).
pub fn apply_layer(rootfs: &Path, layer: impl Read) -> std::io::Result<()> {
    let mut archive = tar::Archive::new(layer);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(true);
    // What this layer wrote: an opaque whiteout only hides what lies below.
    let mut written: HashSet<PathBuf> = HashSet::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let Some(rel) = clean(&path) else {
            return Err(std::io::Error::other(format!(
                "unsafe path {} in layer",
                path.display()
            )));
        };
        let name = rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parent = rel.parent().unwrap_or(Path::new("")).to_path_buf();
        if name == OPAQUE_WHITEOUT {
            let dir = rootfs.join(&parent);
            if let Ok(rd) = std::fs::read_dir(&dir) {
                for e in rd.flatten() {
                    let child = parent.join(e.file_name());
                    if !written.contains(&child) {
                        remove_any(&e.path())?;
                    }
                }
            }
            continue;
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            if hidden.is_empty() || hidden == "." || hidden == ".." {
                continue;
            }
            remove_any(&rootfs.join(&parent).join(hidden))?;
            continue;
        }
        if rel.as_os_str().is_empty() {
            continue; // the layer root itself
        }
        let dest = rootfs.join(&rel);
        let is_dir = entry.header().entry_type().is_dir();
        // A directory stays (merged); anything else replaces what is there.
        match std::fs::symlink_metadata(&dest) {
            Ok(m) if !(is_dir && m.is_dir()) => remove_any(&dest)?,
            _ => {}
        }
        entry.unpack_in(rootfs)?;
        written.insert(rel);
    }
    Ok(())
}

fn remove_any(p: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p),
        Ok(_) => std::fs::remove_file(p),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// A layer path made relative, without `.`; `None` when it has `..`.
fn clean(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(entries: &[(&str, Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, content) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            match content {
                Some(c) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(c.len() as u64);
                    h.set_mode(0o644);
                    h.set_cksum();
                    b.append_data(&mut h, path, c.as_bytes()).unwrap();
                }
                None => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    h.set_mode(0o755);
                    h.set_cksum();
                    b.append_data(&mut h, path, std::io::empty()).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn whiteouts_across_two_layers() {
        let root = tempfile::tempdir().unwrap();
        let lower = layer(&[
            ("etc/", None),
            ("etc/keep", Some("k")),
            ("etc/gone", Some("g")),
            ("opaque/", None),
            ("opaque/old", Some("o")),
            ("opaque/sub/", None),
            ("opaque/sub/deep", Some("d")),
            ("dir-gone/", None),
            ("dir-gone/x", Some("x")),
        ]);
        let upper = layer(&[
            ("etc/.wh.gone", Some("")),
            (".wh.dir-gone", Some("")),
            ("opaque/", None),
            ("opaque/.wh..wh..opq", Some("")),
            ("opaque/new", Some("n")),
            ("etc/keep", Some("k2")),
        ]);
        apply_layer(root.path(), &lower[..]).unwrap();
        apply_layer(root.path(), &upper[..]).unwrap();
        let r = root.path();
        assert_eq!(std::fs::read_to_string(r.join("etc/keep")).unwrap(), "k2");
        assert!(!r.join("etc/gone").exists());
        assert!(!r.join("etc/.wh.gone").exists());
        assert!(!r.join("dir-gone").exists());
        assert!(!r.join("opaque/old").exists());
        assert!(!r.join("opaque/sub").exists());
        assert!(!r.join("opaque/.wh..wh..opq").exists());
        assert_eq!(std::fs::read_to_string(r.join("opaque/new")).unwrap(), "n");
    }

    #[test]
    fn opaque_whiteout_keeps_same_layer_entries_written_before_it() {
        let root = tempfile::tempdir().unwrap();
        apply_layer(
            root.path(),
            &layer(&[("d/", None), ("d/old", Some("o"))])[..],
        )
        .unwrap();
        apply_layer(
            root.path(),
            &layer(&[
                ("d/", None),
                ("d/new", Some("n")),
                ("d/.wh..wh..opq", Some("")),
            ])[..],
        )
        .unwrap();
        assert!(!root.path().join("d/old").exists());
        assert!(root.path().join("d/new").exists());
    }

    #[test]
    fn zstd_layers_of_several_frames() {
        let tar = layer(&[("a/", None), ("a/f", Some("zstd"))]);
        let (one, two) = tar.split_at(700);
        let mut z = Vec::new();
        for part in [one, two] {
            z.extend(ruzstd::encoding::compress_to_vec(
                part,
                ruzstd::encoding::CompressionLevel::Fastest,
            ));
        }
        let dir = tempfile::tempdir().unwrap();
        let blob = dir.path().join("blob");
        std::fs::write(&blob, &z).unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        apply_layer(&root, open_layer(File::open(&blob).unwrap()).unwrap()).unwrap();
        assert_eq!(std::fs::read_to_string(root.join("a/f")).unwrap(), "zstd");
    }

    #[test]
    fn references() {
        assert_eq!(split_reference("busybox"), ("busybox", "latest"));
        assert_eq!(split_reference("busybox:1.36"), ("busybox", "1.36"));
        assert_eq!(
            split_reference("localhost:5000/busybox"),
            ("localhost:5000/busybox", "latest")
        );
        assert_eq!(
            split_reference("docker.io/library/busybox:1@sha256:ab"),
            ("docker.io/library/busybox", "1")
        );
    }

    #[test]
    fn missing_image_names_what_was_tried() {
        let d = tempfile::tempdir().unwrap();
        let e = resolve(d.path(), "nginx:1.27", &d.path().join("cache")).unwrap_err();
        let LocalError::NotFound(e) = e else {
            panic!("{e:?}")
        };
        assert!(e.contains("image \"nginx:1.27\" not found"), "{e}");
        assert!(e.contains("nginx/index.json"), "{e}");
    }
}
