#!/usr/bin/env bash
# Build a small busybox image for the runc backend (`wasmhook run --backend runc --images DIR`)
# from Debian's busybox-static, with no registry:
#   DIR/busybox/          an OCI image layout (oci-layout, index.json, blobs/sha256/...) holding
#                         one gzip layer, tagged `latest`: what `skopeo copy ... oci:DIR/busybox`
#                         would write. Resolves `image: busybox` and `image: busybox:latest`.
#   DIR/busybox-rootfs/rootfs/  the same tree as a plain rootfs directory
#                         (resolves `image: busybox-rootfs`).
# Usage: scripts/make-test-image.sh DIR   (needs /bin/busybox: apt-get install busybox-static)
set -euo pipefail
dir=${1:?usage: $0 DIR}
busybox=${BUSYBOX:-/bin/busybox}
[ -x "$busybox" ] || { echo "$0: $busybox not found (apt-get install busybox-static)" >&2; exit 1; }
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The root filesystem: busybox, one symlink per applet, the usual top-level directories.
root=$work/rootfs
mkdir -p "$root"/{bin,etc,tmp,proc,sys,dev,root,var/www}
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"

# Plain rootfs form.
rm -rf "$dir/busybox-rootfs"
mkdir -p "$dir/busybox-rootfs"
cp -a "$root" "$dir/busybox-rootfs/rootfs"

# OCI layout form (reproducible: sorted, numeric owners, fixed mtimes, gzip -n).
out=$dir/busybox
rm -rf "$out"
mkdir -p "$out/blobs/sha256"
blob() { # file -> prints digest hex, moves it into blobs
    local h
    h=$(sha256sum "$1" | cut -d' ' -f1)
    mv "$1" "$out/blobs/sha256/$h"
    echo "$h"
}
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$root" -cf "$work/layer.tar" .
diff_id=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
gzip -n -9 "$work/layer.tar"
layer_size=$(stat -c %s "$work/layer.tar.gz")
layer=$(blob "$work/layer.tar.gz")

arch=$(uname -m)
case $arch in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; esac
cat >"$work/config.json" <<EOF
{"created":"1970-01-01T00:00:00Z","architecture":"$arch","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:$diff_id"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"scripts/make-test-image.sh"}]}
EOF
config_size=$(stat -c %s "$work/config.json")
config=$(blob "$work/config.json")

cat >"$work/manifest.json" <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$config","size":$config_size},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:$layer","size":$layer_size}]}
EOF
manifest_size=$(stat -c %s "$work/manifest.json")
manifest=$(blob "$work/manifest.json")

printf '{"imageLayoutVersion":"1.0.0"}' >"$out/oci-layout"
cat >"$out/index.json" <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:$manifest","size":$manifest_size,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}
EOF
echo "$out (OCI layout, manifest sha256:$manifest)"
echo "$dir/busybox-rootfs/rootfs (plain rootfs)"
