#!/usr/bin/env bash
# build-static.sh: the wasmhook binary as nodes and images get it. Release profile, linked
# statically against glibc as a static PIE (the kernel still loads it at a random address:
# ASLR is kept). Prints the binary's path on stdout; cargo's output goes to stderr.
#
#   scripts/build-static.sh            ->  target/<host triple>/release/wasmhook
#   sudo deploy/install.sh             installs that binary on a node
#
# Why static:
#   - It runs on any Linux of the same architecture, whatever its glibc: a node's distribution,
#     or a container image with no libc at all (`wasmhook hook run` inside a distroless image).
#     A dynamic build from Debian 12 needs glibc >= 2.34 wherever it runs.
#   - A one-shot process starts faster: no loader, no shared libraries to map and bind.
#     `wasmhook --version` 2.4 -> 1.6 ms, a warm `hook run` 3.9 -> 3.1 ms on the bench machine.
# What it changes: host name lookups (httpGet/tcpSocket/gRPC handlers, registry pulls) read
# /etc/hosts and DNS (/etc/resolv.conf) with glibc's built-in `files` and `dns` sources, as
# the kubelet's own Go resolver does; NSS plug-ins (`mdns`, `ldap`, `resolve`) are not loaded.
# With systemd-resolved, its stub at 127.0.0.53 (in resolv.conf) still answers.
#
# `cargo build --release` (what `cargo run --release` and the tests use) stays dynamic: crt-static
# applies only with an explicit --target, which keeps it away from build scripts and proc-macros.
set -euo pipefail
cd "$(dirname "$0")/.."

host=$(rustc -vV | sed -n 's/^host: //p')
case $host in
    *-linux-gnu) ;;
    *) echo "$0: static builds are for *-linux-gnu hosts; this one is $host" >&2; exit 1 ;;
esac
# Relative relocations packed as RELR (a bitmap) instead of RELA entries of 24 bytes: the
# start-up code that relocates a static PIE reads 17 KiB instead of 1.5 MiB: `--version`
# 1.75 -> 1.64 ms and a warm `hook run` 2.71 -> 2.61 ms (600 runs in turns on the bench
# machine, same code otherwise), and the binary is 1.5 MiB smaller. That start-up
# code comes from glibc and must know RELR (2.36+), and the linker must write it (binutils
# 2.38+, which otherwise only warns); older ones get the usual RELA. Only the final link
# changes (`cargo rustc`), so the dependencies' build is shared with plain `--target` builds.
link_args=()
glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | sed -n 's/^glibc //p')
if [ -n "$glibc" ] && [ "$(printf '%s\n2.36\n' "$glibc" | sort -V | head -1)" = 2.36 ]; then
    link_args=(-C link-arg=-Wl,-z,pack-relative-relocs)
fi
# getrandom 0.4 (wasmtime-wasi's random, tempfile) finds glibc's getrandom() with dlsym, which
# a static binary does not have: it then falls back to polling /dev/random and reading
# /dev/urandom (three more system calls, and a failure where /dev is absent). Name the
# function directly; glibc has had it since 2.25.
rustflags="${RUSTFLAGS:-} -C target-feature=+crt-static --cfg getrandom_backend=\"linux_getrandom\""
RUSTFLAGS=$rustflags \
    cargo rustc --release --target "$host" --bin wasmhook "$@" -- "${link_args[@]}" >&2
bin=target/$host/release/wasmhook
# Checked, not assumed: a toolchain that ignored crt-static would hand out a dynamic binary.
if readelf -l "$bin" | grep -q 'Requesting program interpreter'; then
    echo "$0: $bin is not statically linked" >&2
    exit 1
fi
# And it starts (relocating itself is the first thing it does).
if ! "$bin" --version >/dev/null; then
    echo "$0: $bin does not start" >&2
    exit 1
fi
echo "$bin"
