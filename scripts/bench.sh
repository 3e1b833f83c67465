#!/usr/bin/env bash
# Build benchmarks: runs release `twin-server build` several times per input under GNU time and
# writes docs/BENCHMARKS.md (command, machine, wall time, features/s, peak RSS — median of runs).
#   scripts/bench.sh [RUNS]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
RUNS="${1:-3}"
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/citytwin/target}"
command -v /usr/bin/time >/dev/null || { apt-get install -y -qq time >/dev/null; }
bash scripts/fetch-boundaries.sh >/dev/null
cargo build --release --locked -p twin-server
BIN="$CARGO_TARGET_DIR/release/twin-server"
DATA="$ROOT/../shared/data"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# name | features counted | args
CASES=(
  "default Shenyang city (generate + index)|buildings|"
  "OSM PBF porto.osm.pbf (native reader)|buildings+roads|--source $DATA/osm/porto.osm.pbf"
  "GeoJSON astana_osm_buildings.geojson (GDAL)|buildings|--source $DATA/buildings/astana_osm_buildings.geojson"
  "CityJSON DenHaag_01_v2.city.json|buildings|--source $DATA/cim/cityjson/DenHaag_01_v2.city.json"
)
rows=""
for c in "${CASES[@]}"; do
  IFS='|' read -r name what args <<<"$c"
  walls=(); rsss=(); feats=0
  for i in $(seq 1 "$RUNS"); do
    rm -rf "$TMP/m"
    # shellcheck disable=SC2086
    /usr/bin/time -f "%e %M" -o "$TMP/time" "$BIN" build $args --no-tiles --out "$TMP/m" >/dev/null 2>"$TMP/log"
    read -r wall rss <"$TMP/time"
    walls+=("$wall"); rsss+=("$rss")
    feats=$(python3 -c "import json;m=json.load(open('$TMP/m/manifest.json'))['layers'];print(sum(m[k] for k in '$what'.split('+')))")
  done
  med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
  w=$(med "${walls[@]}"); r=$(med "${rsss[@]}")
  rate=$(python3 -c "print(f'{$feats/max($w,0.01):,.0f}')")
  rows+="| $name | $feats $what | $w | $rate | $(python3 -c "print(f'{$r/1024:,.0f}')") |"$'\n'
  echo "bench: $name: ${w}s, $rate features/s, peak RSS $((r/1024)) MiB"
done

CPU="$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)"
cat > docs/BENCHMARKS.md <<MD
# Benchmarks

## Model build (\`twin-server build\`)

Command: \`scripts/bench.sh $RUNS\` — release build, each input built $RUNS times from scratch
(ingest or generation, district assignment, spatial index, writing \`model.bin\`/\`index.bin\`/
\`manifest.json\`; \`--no-tiles\`: the vector tile pyramid is measured below), wall time and peak RSS measured by GNU time around the whole process; medians.

Machine: $CPU, $(nproc) cores, $(free -g | awk '/^Mem:/{print $2}') GiB RAM, $(date -u +%Y-%m-%d).

| input | features | wall s | features/s | peak RSS MiB |
|---|---|---|---|---|
$rows
Goal (foundation issue): default city ingest + index under 60 s with peak RSS under 3 GB on the
2-core machine.

No peer is named for this step; the vector-tile and 3D Tiles issues compare with martin,
tippecanoe and tyler where they apply.
MD
bash scripts/bench-tiles.sh "$BIN" "$RUNS" >> docs/BENCHMARKS.md
echo "bench: wrote docs/BENCHMARKS.md"

# Tile serving, twin-server vs martin: its own section of docs/BENCHMARKS.md (kept across the
# rewrite above by regenerating it here).
bash "$ROOT/scripts/bench-serve.sh"
