#!/usr/bin/env bash
# install-hook-tools.sh: set up the tools that build wasmhook's Python and JavaScript hooks
# (examples/hooks/python, examples/hooks/js; scripts/build-script-hooks.sh) on Debian 12, x86_64.
# Pinned versions, installed locally; nothing goes into the system Python or npm's global prefix.
#
# What you get:
#   Python -> typed hook component   componentize-py (PyPI), in a venv
#   JS     -> typed hook component   @bytecodealliance/componentize-js (npm), npm install --prefix
# Installed under $WASM_TOOLCHAIN_DIR/hook-tools (WASM_TOOLCHAIN_DIR defaults to
# ~/.local/wasm-toolchain, shared with scripts/install-wasm-toolchain.sh):
#   python/ (venv, bin/componentize-py), js/ (node_modules/.bin/componentize-js), env.sh (source it)
# Debian packages only when missing: python3-venv (no ensurepip), nodejs + npm (no `node`/`npm`).
# From scratch about 20 s (a 17 MB wheel, npm packages; ~460 MB on disk, mostly node_modules);
# re-running only re-checks (under 1 s) and repairs what is missing or of another version.
# wasm-tools (to validate the output) comes from scripts/install-wasm-toolchain.sh.
#
# Knobs (env):
#   WASM_TOOLCHAIN_DIR        install prefix (default ~/.local/wasm-toolchain)
#   COMPONENTIZE_PY_VERSION   default 0.25.1
#   COMPONENTIZE_JS_VERSION   default 0.23.0
#   PREVIEW2_SHIM_VERSION     default 0.25.0: componentize-js runs its splicer (a transpiled
#                             component) on @bytecodealliance/preview2-shim without declaring it;
#                             0.25 preopens `/`, 0.26 preopens nothing, so the WIT file is not
#                             found ("os error 44", the same failure as `jco componentize`)
#   JCO_VERSION               default 1.35.0 (componentize-js's own dependency, pinned here; its
#                             lib/wit/builtin/0.2.12 WASI WIT is what the JS hook's world uses)
#   HOOK_TOOLS_PYTHON         the Python that makes the venv (default /usr/bin/python3, Debian's;
#                             else the first python3 on PATH); componentize-py needs >= 3.9
#   HOOK_TOOLS_SKIP           "python" or "js": install only the other one
set -euo pipefail

if [ "${1:-}" = -h ] || [ "${1:-}" = --help ]; then
  sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
[ $# -eq 0 ] || { echo "unknown argument: $1 (see --help)" >&2; exit 2; }

PREFIX="${WASM_TOOLCHAIN_DIR:-$HOME/.local/wasm-toolchain}"
TOOLS="$PREFIX/hook-tools"
PY_VERSION="${COMPONENTIZE_PY_VERSION:-0.25.1}"
JS_VERSION="${COMPONENTIZE_JS_VERSION:-0.23.0}"
SHIM_VERSION="${PREVIEW2_SHIM_VERSION:-0.25.0}"
JCO_VERSION="${JCO_VERSION:-1.35.0}"
SKIP="${HOOK_TOOLS_SKIP:-}"
if [ -n "${HOOK_TOOLS_PYTHON:-}" ]; then PY=$HOOK_TOOLS_PYTHON
elif [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3
else PY=python3; fi

log() { printf '[hook-tools] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
apt_install() { # packages...
  command -v apt-get >/dev/null || die "need $* but this is not Debian (apt-get): install them yourself"
  [ -z "$SUDO" ] || command -v sudo >/dev/null || die "apt-get needs root (or sudo) to install $*"
  log "apt: installing $*"
  local APT=(apt-get -o DPkg::Lock::Timeout=600 -qq)
  $SUDO "${APT[@]}" update
  $SUDO env DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y --no-install-recommends "$@" >/dev/null
}

# --- 1. Debian packages, only for what is missing ---------------------------------------------
need=()
if [ "$SKIP" != python ]; then
  command -v "$PY" >/dev/null 2>&1 || need+=(python3)
  # Debian splits ensurepip (what `python3 -m venv` needs) into python3-venv.
  "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
fi
if [ "$SKIP" != js ]; then
  # A nodesource nodejs bundles npm, so check the commands, not the Debian package names.
  command -v node >/dev/null 2>&1 || need+=(nodejs)
  command -v npm >/dev/null 2>&1 || need+=(npm)
fi
[ "${#need[@]}" -eq 0 ] || apt_install ca-certificates "${need[@]}"

# --- 2. componentize-py in a venv ----------------------------------------------------------------
CPY="$TOOLS/python/bin/componentize-py"
py_ok() { [ -x "$CPY" ] && [ "$("$CPY" --version 2>/dev/null | awk '{print $2}')" = "$PY_VERSION" ]; }
if [ "$SKIP" != python ] && ! py_ok; then
  "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 9))' || die "$PY is older than 3.9"
  if [ ! -x "$TOOLS/python/bin/pip" ]; then
    log "python: creating a venv in $TOOLS/python with $("$PY" --version 2>&1)"
    rm -rf "$TOOLS/python"
    "$PY" -m venv "$TOOLS/python"
  fi
  log "python: pip install componentize-py==$PY_VERSION (into the venv)"
  "$TOOLS/python/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir \
    "componentize-py==$PY_VERSION"
  py_ok || die "componentize-py $PY_VERSION did not install: $("$CPY" --version 2>&1 || true)"
fi

# --- 3. componentize-js in a local npm prefix ---------------------------------------------------
CJS="$TOOLS/js/node_modules/.bin/componentize-js"
# The prefix is a project of its own (so npm never walks up to a parent's package.json) whose
# package.json pins the three packages exactly; npm install resolves the rest.
cat > "$TMP/package.json" <<EOT
{
  "name": "wasmhook-hook-tools",
  "private": true,
  "dependencies": {
    "@bytecodealliance/componentize-js": "$JS_VERSION",
    "@bytecodealliance/jco": "$JCO_VERSION",
    "@bytecodealliance/preview2-shim": "$SHIM_VERSION"
  }
}
EOT
npm_v() { node -p "require('$TOOLS/js/node_modules/@bytecodealliance/$1/package.json').version" 2>/dev/null; }
js_ok() {
  cmp -s "$TMP/package.json" "$TOOLS/js/package.json" && [ -x "$CJS" ] &&
    [ "$(npm_v componentize-js)" = "$JS_VERSION" ] && [ "$(npm_v jco)" = "$JCO_VERSION" ] &&
    [ "$(npm_v preview2-shim)" = "$SHIM_VERSION" ]
}
if [ "$SKIP" != js ] && ! js_ok; then
  node_major=$(node -p 'process.versions.node.split(".")[0]')
  [ "$node_major" -ge 18 ] || log "warning: node $(node --version) is old; componentize-js is tested on node >= 18"
  log "js: npm install componentize-js@$JS_VERSION jco@$JCO_VERSION preview2-shim@$SHIM_VERSION (into $TOOLS/js)"
  mkdir -p "$TOOLS/js"
  cp "$TMP/package.json" "$TOOLS/js/package.json"
  npm install --prefix "$TOOLS/js" --no-audit --no-fund --loglevel=error >/dev/null
  js_ok || die "componentize-js $JS_VERSION did not install"
fi

# --- 4. env.sh (its own file: install-wasm-toolchain.sh owns $PREFIX/env.sh) --------------------
cat > "$TMP/env.sh" <<EOT
# source me: Python/JS hook tools (generated by wasmhook's scripts/install-hook-tools.sh)
export HOOK_TOOLS_DIR="$TOOLS"
export COMPONENTIZE_PY="$CPY"
export COMPONENTIZE_PY_VERSION="$PY_VERSION"
export COMPONENTIZE_JS="$CJS"
export COMPONENTIZE_JS_VERSION="$JS_VERSION"
# WASI 0.2.12 WIT packages (io, clocks, filesystem, ...) shipped with the pinned jco
export HOOK_TOOLS_WASI_WIT="$TOOLS/js/node_modules/@bytecodealliance/jco/lib/wit/builtin/0.2.12"
# wasm-tools & co. from scripts/install-wasm-toolchain.sh, when installed
[ -f "$PREFIX/env.sh" ] && . "$PREFIX/env.sh"
EOT
mkdir -p "$TOOLS"
cmp -s "$TMP/env.sh" "$TOOLS/env.sh" 2>/dev/null || mv "$TMP/env.sh" "$TOOLS/env.sh"

# --- 5. smoke test: both tools answer (a full componentize takes 5-20 s: build-script-hooks.sh) ---
summary=()
if [ "$SKIP" != python ]; then summary+=("componentize-py $("$CPY" --version | awk '{print $2}')"); fi
if [ "$SKIP" != js ]; then
  "$CJS" --help >/dev/null 2>&1 || die "$CJS --help failed"
  [ -f "$TOOLS/js/node_modules/@bytecodealliance/jco/lib/wit/builtin/0.2.12/wasi-filesystem/package.wit" ] ||
    die "jco $JCO_VERSION has no lib/wit/builtin/0.2.12 (the JS hook's WASI WIT)"
  summary+=("componentize-js $JS_VERSION (node $(node --version), preview2-shim $SHIM_VERSION, jco $JCO_VERSION)")
fi
log "ok: ${summary[*]}"
log "next: source $TOOLS/env.sh; scripts/build-script-hooks.sh"
