#!/usr/bin/env bash
# Runs every fuzz target of tests/fuzz (docs/ARCHITECTURE.md, "Fuzzing") for a bounded time and
# fails on the first crash, printing the reproducer path.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 20 s each, every target)
#
# Needs cargo-fuzz (installed here if missing) and libFuzzer's nightly flags, which the stable
# toolchain accepts with RUSTC_BOOTSTRAP=1. Builds with AddressSanitizer and debug assertions
# (integer overflow panics) into $CARGO_TARGET_DIR/fuzz. The working corpus lives in
# $CARGO_TARGET_DIR/fuzz-corpus/<target> (grows across runs, never committed), seeded each run
# from tests/fuzz/seeds/<target> and the minimised past crashes in tests/fuzz/regressions/<target>.
# FUZZ_SANITIZER=none builds without ASan (faster, still catches panics, overflows, OOM, hangs).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/citytwin/target}"
export RUSTC_BOOTSTRAP=1
SECS="${1:-20}"
shift || true
SAN="${FUZZ_SANITIZER:-address}"
CARGO_FUZZ_VERSION=0.13.2
FUZZ_DIR=tests/fuzz
SHARED="${CITYTWIN_SHARED_DATA:-$ROOT/../shared/data}"
TDIR="$CARGO_TARGET_DIR/fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

if [ "$#" -gt 0 ]; then
    TARGETS=("$@")
else
    mapfile -t TARGETS < <(cargo fuzz list --fuzz-dir "$FUZZ_DIR")
fi

BUILD_FLAGS=(--fuzz-dir "$FUZZ_DIR" --target-dir "$TDIR" --debug-assertions -s "$SAN")
t0=$(date +%s)
if [ "${#TARGETS[@]}" -eq 1 ]; then
    cargo fuzz build "${BUILD_FLAGS[@]}" "${TARGETS[0]}"
else
    cargo fuzz build "${BUILD_FLAGS[@]}"
fi
echo "fuzz: built in $(( $(date +%s) - t0 )) s"

failed=0
for t in "${TARGETS[@]}"; do
    corpus="$CARGO_TARGET_DIR/fuzz-corpus/$t"
    artifacts="$CARGO_TARGET_DIR/fuzz-artifacts/$t"
    mkdir -p "$corpus" "$artifacts"
    dirs=("$corpus")
    [ -d "$FUZZ_DIR/seeds/$t" ] && dirs+=("$FUZZ_DIR/seeds/$t")
    [ -d "$FUZZ_DIR/regressions/$t" ] && dirs+=("$FUZZ_DIR/regressions/$t")
    # Real third-party samples (never committed): the small 3D Tiles files of the shared data.
    shared_seeds=()
    case "$t" in
        viewer_tileset) shared_seeds=("$SHARED/3dtiles/3dbag/test_tyler/tileset.json" "$SHARED/3dtiles/lyon1-wrong-crs/tileset.json") ;;
        viewer_glb) mapfile -t shared_seeds < <(ls -1Sr "$SHARED"/3dtiles/3dbag/tiles/*.glb 2>/dev/null | head -n 2) ;;
    esac
    if [ "${#shared_seeds[@]}" -gt 0 ]; then
        sdir="$CARGO_TARGET_DIR/fuzz-shared-seeds/$t"
        mkdir -p "$sdir"
        for f in "${shared_seeds[@]}"; do
            if [ -f "$f" ] && [ "$(stat -c %s "$f")" -le 16384 ]; then
                cp "$f" "$sdir/$(echo "${f#"$SHARED"/}" | tr '/' '_')"
            fi
        done
        dirs+=("$sdir")
    fi
    log="$artifacts/last-run.log"
    echo "fuzz: $t for ${SECS}s"
    if cargo fuzz run "${BUILD_FLAGS[@]}" "$t" "${dirs[@]}" -- \
        -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -artifact_prefix="$artifacts/" -print_final_stats=1 >"$log" 2>&1; then
        grep -E "stat::number_of_executed_units|stat::new_units_added" "$log" | tr '\n' ' ' | sed "s/^/fuzz: $t ok: /"
        echo
    else
        failed=1
        echo "fuzz: $t FAILED; log $log"
        grep -E "^(==[0-9]+==ERROR|thread .* panicked|SUMMARY|panicked at)" "$log" | head -n 5 || true
        tail -n 30 "$log"
        for a in $(grep -oE "Test unit written to [^ ]+" "$log" | awk '{print $5}'); do
            echo "fuzz: reproducer $a  (replay: RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir $FUZZ_DIR --target-dir $TDIR -s $SAN --debug-assertions $t $a)"
        done
    fi
done
exit "$failed"
