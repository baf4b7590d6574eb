#!/usr/bin/env bash
# build-hooks.sh: build the example WASI hooks (examples/hooks) and put them in examples/hooks/bin.
#
#   scripts/build-hooks.sh            build everything, validate it, copy it into examples/hooks/bin
#   scripts/build-hooks.sh --check    build into a temporary directory and fail if examples/hooks/bin
#                                     differs (stale or hand-edited binaries)
#   scripts/build-hooks.sh --out DIR  build into DIR instead of examples/hooks/bin
#
# Needs the toolchain of scripts/install-wasm-toolchain.sh (it installs nothing itself).
# Outputs (all validated with wasm-tools):
#   write-message.wasm, drain.wasm        Rust, WASI p1 command modules (examples/hooks/<name>)
#   log-env.wasm                          C, WASI p1 command module (examples/hooks/c/log-env.c)
#   write-message.component.wasm          the p1 module above as a WASI p2 command component
#   drain-http.component.wasm             Rust (hooks-sdk feature `http`), p1 module + command
#                                         adapter; imports wasi:http/outgoing-handler@0.2.12 (no
#                                         p1 module in bin/: its wasi:http imports need a component)
#   netprobe.component.wasm               Rust, like drain-http, plus raw wasi:sockets: prints what
#                                         the hook network policy lets it reach (tests use it)
#   typed.component.wasm                  Rust reactor exporting wasmhook:hook/handler@0.1.0
#   hello.wat, fail.wat, healthy.wat     copied from examples/hooks/wat (the host compiles .wat)
#   SHA256SUMS                            of the files above
# The build is reproducible on the same toolchain: paths are remapped, no timestamps are embedded.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
HOOKS="$ROOT/examples/hooks"
OUT="$HOOKS/bin"
CHECK=0
while [ $# -gt 0 ]; do
  case "$1" in
    --check) CHECK=1 ;;
    --out) OUT=$(mkdir -p "$2" && cd "$2" && pwd); shift ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

log() { printf '[build-hooks] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
START=$EPOCHREALTIME
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1fs", b - a }'; }

# --- toolchain ---------------------------------------------------------------------------------
ENV_SH="${WASM_TOOLCHAIN_DIR:-$HOME/.local/wasm-toolchain}/env.sh"
# shellcheck source=/dev/null
[ -f "$ENV_SH" ] && . "$ENV_SH"
problems=()
command -v cargo-wasip1 >/dev/null 2>&1 || problems+=("cargo-wasip1 not on PATH")
[ -x "${WASM_TOOLS:-}" ] || problems+=("wasm-tools not found")
[ -s "${WASI_ADAPTER_COMMAND:-}" ] || problems+=("WASI command adapter not found")
[ -s "${WASI_ADAPTER_REACTOR:-}" ] || problems+=("WASI reactor adapter not found")
[ -x /usr/bin/clang ] || problems+=("/usr/bin/clang missing")
[ -f /usr/lib/wasm32-wasi/libc.a ] || problems+=("wasi-libc missing")
if [ "${#problems[@]}" -gt 0 ]; then
  log "the wasm toolchain is not installed (${problems[*]}). Install it with:"
  log "  sudo $ROOT/scripts/install-wasm-toolchain.sh && . ${ENV_SH/#$HOME/\~}"
  exit 1
fi
# The adapter must match the host's wasmtime (root Cargo.toml pins it as "=X.Y.Z").
host_wt=$(sed -n 's/^wasmtime = { version = "=\([0-9.]*\)".*/\1/p' "$ROOT/Cargo.toml" | head -1)
adapter_v=$(basename "$(dirname "$WASI_ADAPTER_COMMAND")")
if [ -n "$host_wt" ] && [ "$host_wt" != "$adapter_v" ]; then
  die "WASI adapter $adapter_v does not match the host's wasmtime $host_wt: WASI_ADAPTER_VERSION=$host_wt scripts/install-wasm-toolchain.sh"
fi
WT="$WASM_TOOLS"

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT

# --- Rust hooks (one cargo invocation for the whole workspace) ---------------------------------
t=$EPOCHREALTIME
CARGO_HOME_DIR="${CARGO_HOME:-$HOME/.cargo}"
# Remapped paths keep the build machine's directories out of panic locations.
export CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS="--remap-path-prefix=$ROOT=/wasmhook --remap-path-prefix=$CARGO_HOME_DIR=/cargo"
# Two invocations, so that cargo's feature unification does not give every hook hooks-sdk's
# `http` feature (wasip2's component-type sections and a cabi_realloc export) when only
# drain-http and netprobe ask for it: features are unified over the packages of one build.
(cd "$HOOKS" && cargo-wasip1 build --release --locked --quiet --workspace --exclude drain-http --exclude netprobe &&
  cargo-wasip1 build --release --locked --quiet -p drain-http -p netprobe)
REL="$HOOKS/target/wasm32-wasip1/release"
cp "$REL/write-message.wasm" "$REL/drain.wasm" "$STAGE/"
log "rust: write-message, drain, drain-http, netprobe, typed in $(since "$t")"

# --- C hooks -----------------------------------------------------------------------------------
t=$EPOCHREALTIME
for src in "$HOOKS"/c/*.c; do
  name=$(basename "$src" .c)
  /usr/bin/clang --target=wasm32-wasi -O2 -s -Wall -Wextra -Werror \
    -ffile-prefix-map="$ROOT"=/wasmhook "$src" -o "$STAGE/$name.wasm"
done
log "c: $(cd "$HOOKS/c" && ls ./*.c | sed 's|^\./||' | tr '\n' ' ')in $(since "$t")"

# --- components ----------------------------------------------------------------------------------
t=$EPOCHREALTIME
"$WT" component new "$STAGE/write-message.wasm" -o "$STAGE/write-message.component.wasm" \
  --adapt "wasi_snapshot_preview1=$WASI_ADAPTER_COMMAND"
"$WT" component new "$REL/drain-http.wasm" -o "$STAGE/drain-http.component.wasm" \
  --adapt "wasi_snapshot_preview1=$WASI_ADAPTER_COMMAND"
"$WT" component new "$REL/netprobe.wasm" -o "$STAGE/netprobe.component.wasm" \
  --adapt "wasi_snapshot_preview1=$WASI_ADAPTER_COMMAND"
"$WT" component new "$REL/typed.wasm" -o "$STAGE/typed.component.wasm" \
  --adapt "wasi_snapshot_preview1=$WASI_ADAPTER_REACTOR"
log "components: write-message, drain-http, netprobe (command), typed (reactor) in $(since "$t")"

# --- WAT (no build: the host compiles .wat on load) ----------------------------------------------
cp "$HOOKS"/wat/*.wat "$STAGE/"

# --- validate ------------------------------------------------------------------------------------
for f in "$STAGE"/*.wasm "$STAGE"/*.wat; do
  "$WT" validate "$f" || die "$(basename "$f") does not validate"
done
expect_export() { # file wit-line
  "$WT" component wit "$STAGE/$1" | grep -qxF "  export $2;" ||
    die "$1 does not export $2: $("$WT" component wit "$STAGE/$1" | grep -E '^  export' || true)"
}
expect_import() { # file wit-line
  "$WT" component wit "$STAGE/$1" | grep -qxF "  import $2;" ||
    die "$1 does not import $2: $("$WT" component wit "$STAGE/$1" | grep -E '^  import' || true)"
}
expect_export write-message.component.wasm "wasi:cli/run@0.2.12"
expect_export drain-http.component.wasm "wasi:cli/run@0.2.12"
expect_import drain-http.component.wasm "wasi:http/outgoing-handler@0.2.12"
expect_export netprobe.component.wasm "wasi:cli/run@0.2.12"
expect_import netprobe.component.wasm "wasi:sockets/ip-name-lookup@0.2.12"
expect_import netprobe.component.wasm "wasi:http/outgoing-handler@0.2.12"
expect_export typed.component.wasm "wasmhook:hook/handler@0.1.0"
(cd "$STAGE" && sha256sum -- *.wasm *.wat > SHA256SUMS)

# --- install or compare --------------------------------------------------------------------------
if [ "$CHECK" = 1 ]; then
  if diff -r "$STAGE" "$OUT" >/dev/null 2>&1; then
    log "check: ${OUT#"$ROOT"/} is up to date ($(since "$START") in all)"
    exit 0
  fi
  diff -r "$STAGE" "$OUT" >&2 || true
  die "${OUT#"$ROOT"/} differs from a fresh build: run scripts/build-hooks.sh and commit it"
fi
mkdir -p "$OUT"
rm -f "$OUT"/*.wasm "$OUT"/*.wat "$OUT/SHA256SUMS"
cp "$STAGE"/* "$OUT/"
log "built into ${OUT#"$ROOT"/} in $(since "$START"):"
(cd "$OUT" && for f in *.wasm *.wat; do printf '  %-30s %7d bytes\n' "$f" "$(stat -c %s "$f")"; done) >&2
