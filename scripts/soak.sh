#!/usr/bin/env bash
# Soak (issue 8 item 6): mixed tile, API (reads; event, transition and observation writes) and
# WebSocket stream load at fixed rates for a bounded time against a release `serve` on loopback
# (SQLite store), then a verdict: 0 errors and flat server RSS, else exit 1.
#
#   scripts/soak.sh [SECONDS=300] [KEY=VALUE … passed to the client: tiles= reads= events= transitions= obs= subs=]
#   SOAK_PROFILE=debug scripts/soak.sh 60     # quick variant on a debug build
#   SOAK_WRITE_DOC=1 scripts/soak.sh          # also (re)writes the Soak section of docs/BENCHMARKS.md
#
# Client: twin-server/examples/soak.rs. The model: 20,000 synthetic buildings (11 m squares in rows)
# plus the two-district live test city (units, stations), vector tiles to z16.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-300}; shift || true
PROFILE=${SOAK_PROFILE:-release}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/citytwin/target}
if [ "$PROFILE" = release ]; then cargo build --release -q -p twin-server --bin twin-server --example soak
else cargo build -q -p twin-server --bin twin-server --example soak; fi
BIN=$CARGO_TARGET_DIR/$PROFILE/twin-server
CLIENT=$CARGO_TARGET_DIR/$PROFILE/examples/soak
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

TMP=$(mktemp -d /tmp/citytwin-soak.XXXXXX)
SERVER_PID=""
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT

python3 - "$TMP/city.geojson" <<'PY'
import json, sys
f = [
 {"type":"Feature","properties":{"boundary":"administrative","adcode":910001,"name":"西区"},"geometry":{"type":"Polygon","coordinates":[[[123.40,41.77],[123.45,41.77],[123.45,41.82],[123.40,41.82],[123.40,41.77]]]}},
 {"type":"Feature","properties":{"boundary":"administrative","adcode":910002,"name":"东区"},"geometry":{"type":"Polygon","coordinates":[[[123.45,41.77],[123.50,41.77],[123.50,41.82],[123.45,41.82],[123.45,41.77]]]}},
 {"type":"Feature","properties":{"amenity":"police","name":"西区派出所"},"geometry":{"type":"Point","coordinates":[123.41,41.80]}},
 {"type":"Feature","properties":{"amenity":"fire_station","name":"东区消防站"},"geometry":{"type":"Point","coordinates":[123.47,41.80]}},
 {"type":"Feature","properties":{"amenity":"hospital","name":"中心医院"},"geometry":{"type":"Point","coordinates":[123.45,41.81]}},
]
for i in range(20000):
    x, y = 123.40 + 0.0003 * (i % 300), 41.78 + 0.0002 * (i // 300)
    f.append({"type":"Feature","properties":{"building":"yes","height":10 + i % 50},
              "geometry":{"type":"Polygon","coordinates":[[[x,y],[x+0.00013,y],[x+0.00013,y+0.0001],[x,y+0.0001],[x,y]]]}})
json.dump({"type":"FeatureCollection","features":f}, open(sys.argv[1], "w"))
PY
RUST_LOG=warn "$BIN" build --name city --source "$TMP/city.geojson" --out "$TMP/city" --no-3dtiles >/dev/null

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$PORT
RUST_LOG=warn "$BIN" serve --model "$TMP/city" --addr "127.0.0.1:$PORT" --db "sqlite:$TMP/live.sqlite" \
  --anonymous-read --admin-token-file "$TMP/admin.key" --rate-ip 0 --rate-token 0 --max-streams 0 >/dev/null &
SERVER_PID=$!
for _ in $(seq 1 300); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.1; done
for _ in $(seq 1 50); do [ -s "$TMP/admin.key" ] && break; sleep 0.1; done
export CITYTWIN_TOKEN="$(cat "$TMP/admin.key")"
set +e
"$CLIENT" "$BASE" "$SERVER_PID" "$SECS" "$@" > "$TMP/report.json"
RC=$?
set -e
cat "$TMP/report.json"
if [ "${SOAK_WRITE_DOC:-0}" = 1 ] && [ -s "$TMP/report.json" ]; then
  python3 scripts/soak_doc.py "$TMP/report.json" "$PROFILE" "$(git rev-parse --short HEAD)" docs/BENCHMARKS.md
fi
exit $RC
