#!/usr/bin/env bash
# Bounded soak of the lifecycle engine: many pods with wasm postStart/preStop hooks, in
# parallel (SOAK_CONCURRENCY pods per batch, one of them with a hook that hits its timeout)
# and in sequence (batches until SOAK_SECONDS), all on ONE engine. Before and after: open
# fds, threads, child processes, RSS and sandbox directories under a private TMPDIR; the
# test fails if they do not return to the baseline (small slack for fds/threads/RSS).
#
#   SOAK_SECONDS=120 SOAK_CONCURRENCY=8 scripts/soak.sh
#
# Prints `SOAK|metric|before|after[|peak]` lines (see tests/reliability/soak.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${SOAK_SECONDS:=120}"
: "${SOAK_CONCURRENCY:=8}"
export SOAK_SECONDS SOAK_CONCURRENCY
cargo test --release --test reliability soak::soak -- --ignored --exact --nocapture
