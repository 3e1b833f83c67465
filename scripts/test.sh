#!/usr/bin/env bash
# The one test command (README; .ci/run calls exactly this): installs what the tests need, then
# runs every test of the workspace — unit tests and the end-to-end tests under tests/, which read
# the real datasets in ../shared/data and start real servers (PostgreSQL/PostGIS) themselves.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
bash scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
# One target dir outside the clone, shared by CI runs and local builds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/citytwin/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
cargo build --workspace --all-targets --locked
cargo nextest run --workspace --locked --no-fail-fast "$@"
# Fuzz smoke (docs/ARCHITECTURE.md, "Fuzzing"): every fuzz target for FUZZ_SECONDS seconds (default
# 8: 16 targets, about the 2 min 12 × 10 s took; FUZZ_SECONDS=0 skips it). Fails on any crash and prints the reproducer.
if [ "${FUZZ_SECONDS:-8}" != 0 ]; then
    bash scripts/fuzz.sh "${FUZZ_SECONDS:-8}"
fi
