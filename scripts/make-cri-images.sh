#!/usr/bin/env bash
# Build the two images a CRI runtime (containerd) needs to run the tests' pods offline, from
# Debian's busybox-static, with no registry:
#   DIR/busybox/  + DIR/busybox.tar  the busybox image of scripts/make-test-image.sh; with
#                  EXTRA, a second layer holding EXTRA's tree (e.g. EXTRA/hooks/*.wasm is
#                  /hooks/*.wasm in the container; symlinks are kept as they are).
#   DIR/pause/    + DIR/pause.tar    the sandbox ("pause") image: the same busybox layer, with
#                  Cmd `/bin/sleep 2147483647`, so the sandbox keeps its namespaces alive.
# Each .tar is the OCI layout, tagged `latest`, ready for
#   ctr -n k8s.io images import --base-name localhost/busybox DIR/busybox.tar
# (without --base-name ctr names the image import-<date>:latest).
# Reproducible: sorted, numeric owners, fixed mtimes, gzip -n.
# Usage: scripts/make-cri-images.sh DIR [EXTRA]   (needs /bin/busybox: apt-get install busybox-static)
set -euo pipefail
dir=${1:?usage: $0 DIR [EXTRA]}
extra=${2:-}
[ -z "$extra" ] || [ -d "$extra" ] || { echo "$0: $extra is not a directory" >&2; exit 1; }
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The busybox root filesystem, exactly as the runc backend's test image has it.
bash "$(dirname "$0")/make-test-image.sh" "$work/base" >/dev/null
rootfs=$work/base/busybox-rootfs/rootfs

mkdir -p "$work/blobs"
blob() { # file -> prints its digest hex; the file moves into the shared blob store
    local h
    h=$(sha256sum "$1" | cut -d' ' -f1)
    mv "$1" "$work/blobs/$h"
    echo "$h"
}
layer() { # tree name -> sets layer_<name>="<digest> <size> <diff_id>"
    tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$1" -cf "$work/$2.tar" .
    local diff_id size digest
    diff_id=$(sha256sum "$work/$2.tar" | cut -d' ' -f1)
    gzip -n -9 "$work/$2.tar"
    size=$(stat -c %s "$work/$2.tar.gz")
    digest=$(blob "$work/$2.tar.gz")
    printf -v "layer_$2" '%s %s %s' "$digest" "$size" "$diff_id"
}
image() { # name cmd-json layer-var... -> DIR/name/ (OCI layout) and DIR/name.tar
    local name=$1 cmd=$2
    shift 2
    local out=$dir/$name diff_ids="" layers="" d s i l
    for l in "$@"; do
        read -r d s i <<<"${!l}"
        diff_ids+="${diff_ids:+,}\"sha256:$i\""
        layers+="${layers:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$d\",\"size\":$s}"
    done
    rm -rf "$out" "$out.tar"
    mkdir -p "$out/blobs/sha256"
    for l in "$@"; do
        read -r d s i <<<"${!l}"
        cp "$work/blobs/$d" "$out/blobs/sha256/$d"
    done
    printf '{"created":"1970-01-01T00:00:00Z","architecture":"%s","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":%s,"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":[%s]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"scripts/make-cri-images.sh"}]}' \
        "$arch" "$cmd" "$diff_ids" >"$work/config.json"
    local config_size config
    config_size=$(stat -c %s "$work/config.json")
    config=$(blob "$work/config.json")
    cp "$work/blobs/$config" "$out/blobs/sha256/"
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' \
        "$config" "$config_size" "$layers" >"$work/manifest.json"
    local manifest_size manifest
    manifest_size=$(stat -c %s "$work/manifest.json")
    manifest=$(blob "$work/manifest.json")
    cp "$work/blobs/$manifest" "$out/blobs/sha256/"
    printf '{"imageLayoutVersion":"1.0.0"}' >"$out/oci-layout"
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}' \
        "$manifest" "$manifest_size" >"$out/index.json"
    tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$out" -cf "$out.tar" .
    echo "$out.tar (OCI layout, manifest sha256:$manifest)"
}

arch=$(uname -m)
case $arch in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; esac

layer "$rootfs" base
image pause '["/bin/sleep","2147483647"]' layer_base
if [ -n "$extra" ]; then
    # A copy, so that the layer's root entry is 0755 whatever EXTRA's own mode is (a tar
    # entry for "." sets the container's / mode).
    cp -a "$extra" "$work/extra-tree"
    chmod 755 "$work/extra-tree"
    layer "$work/extra-tree" extra
    image busybox '["sh"]' layer_base layer_extra
else
    image busybox '["sh"]' layer_base
fi
