#!/usr/bin/env bash
# build-script-hooks.sh: build the Python and JavaScript example hooks (examples/hooks/python,
# examples/hooks/js) into typed hook components in examples/hooks/build (not committed: each is
# 10-20 MB, an interpreter plus the script).
#
#   scripts/build-script-hooks.sh               build both, validate them
#   scripts/build-script-hooks.sh python|js     build only one
#   scripts/build-script-hooks.sh --out DIR     build into DIR instead of examples/hooks/build
#
# Needs scripts/install-hook-tools.sh (componentize-py, componentize-js) and, for validation,
# wasm-tools from scripts/install-wasm-toolchain.sh; it installs nothing itself.
# Outputs (validated with wasm-tools, each must export wasmhook:hook/handler@0.1.0):
#   python-hook.component.wasm   componentize-py, world `hook` of wit/hook.wit       (~18 MB, ~15 s)
#   js-hook.component.wasm       componentize-js, world `js-hook` of examples/hooks/js/wit: the
#                                `hook` world plus wasi:filesystem and wasi:clocks   (~12 MB, ~20 s)
# Separate from build-hooks.sh, whose bin/ is committed and checked byte for byte (--check):
# these outputs are not committed, need node and Python rather than the Rust/C toolchain, and a
# CI job that only checks bin/ should not have to install either.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
HOOKS="$ROOT/examples/hooks"
OUT="$HOOKS/build"
WHICH=(python js)
while [ $# -gt 0 ]; do
  case "$1" in
    python|js) WHICH=("$1") ;;
    --out) OUT=$(mkdir -p "$2" && cd "$2" && pwd); shift ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

log() { printf '[build-script-hooks] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1fs", b - a }'; }

# --- tools ---------------------------------------------------------------------------------------
TC="${WASM_TOOLCHAIN_DIR:-$HOME/.local/wasm-toolchain}"
# shellcheck source=/dev/null
[ -f "$TC/hook-tools/env.sh" ] && . "$TC/hook-tools/env.sh"   # also sources $TC/env.sh
problems=()
for w in "${WHICH[@]}"; do
  case $w in
    python) [ -x "${COMPONENTIZE_PY:-}" ] || problems+=("componentize-py not found") ;;
    js) [ -x "${COMPONENTIZE_JS:-}" ] || problems+=("componentize-js not found")
        [ -f "${HOOK_TOOLS_WASI_WIT:-}/wasi-filesystem/package.wit" ] || problems+=("WASI WIT not found") ;;
  esac
done
[ -x "${WASM_TOOLS:-}" ] || problems+=("wasm-tools not found (scripts/install-wasm-toolchain.sh)")
if [ "${#problems[@]}" -gt 0 ]; then
  log "missing tools (${problems[*]}). Install them with:"
  log "  $ROOT/scripts/install-hook-tools.sh   (and sudo $ROOT/scripts/install-wasm-toolchain.sh for wasm-tools)"
  exit 1
fi

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$OUT"

# --- Python ----------------------------------------------------------------------------------------
build_python() {
  # Built from a copy: componentize-py runs the app at build time and would leave __pycache__.
  mkdir -p "$STAGE/python"
  cp "$HOOKS/python/app.py" "$STAGE/python/"
  (cd "$STAGE/python" && "$COMPONENTIZE_PY" --quiet -d "$ROOT/wit/hook.wit" -w hook \
    componentize app -o "$STAGE/python-hook.component.wasm")
}

# --- JavaScript ------------------------------------------------------------------------------------
build_js() {
  # The js-hook world includes wasmhook:hook/hook and imports two WASI interfaces, so its WIT
  # directory needs deps/: our wit/hook.wit and the WASI 0.2.12 packages of the pinned jco.
  local wit="$STAGE/js-wit"
  mkdir -p "$wit/deps/hook"
  cp "$HOOKS/js/wit/js-hook.wit" "$wit/"
  cp "$ROOT/wit/hook.wit" "$wit/deps/hook/"
  for p in io clocks filesystem; do
    mkdir -p "$wit/deps/$p"
    cp "$HOOK_TOOLS_WASI_WIT/wasi-$p/package.wit" "$wit/deps/$p/"
  done
  # Default features: componentize-js also imports wasi:http (for fetch), which the host provides.
  "$COMPONENTIZE_JS" "$HOOKS/js/hook.js" --wit "$wit" --world-name js-hook \
    -o "$STAGE/js-hook.component.wasm" >/dev/null
}

START=$EPOCHREALTIME
for w in "${WHICH[@]}"; do
  t=$EPOCHREALTIME
  "build_$w"
  f="$STAGE/$w-hook.component.wasm"
  "$WASM_TOOLS" validate "$f" || die "$w-hook.component.wasm does not validate"
  wit=$("$WASM_TOOLS" component wit "$f")
  grep -qxF "  export wasmhook:hook/handler@0.1.0;" <<<"$wit" ||
    die "$w-hook.component.wasm does not export wasmhook:hook/handler@0.1.0: $(grep -E '^  export' <<<"$wit" || true)"
  http=$(grep -oE 'import wasi:http/outgoing-handler@[0-9.]+' <<<"$wit" | sed 's/import //' || true)
  mv "$f" "$OUT/"
  log "$w: ${OUT#"$ROOT"/}/$w-hook.component.wasm, $(stat -c %s "$OUT/$w-hook.component.wasm") bytes, in $(since "$t")${http:+ (imports $http)}"
done
log "done in $(since "$START")"
