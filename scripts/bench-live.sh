#!/usr/bin/env bash
# Live-operations benchmark: event → WebSocket delivery latency (p50/p99) with N concurrent
# subscribers, and event writes/s, on SQLite and on PostgreSQL (a throw-away local cluster).
#
#   scripts/bench-live.sh [SUBSCRIBERS=1000] [EVENTS=300] [RATE=30] [WRITERS=8] [SECONDS=10]
#
# Release build; the server and the client share the machine (note that with the figures).
set -euo pipefail
cd "$(dirname "$0")/.."
SUBS=${1:-1000}; EVENTS=${2:-300}; RATE=${3:-30}; WRITERS=${4:-8}; SECS=${5:-10}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/citytwin/target}
cargo build --release -q -p twin-server --bin twin-server --example bench_live
BIN=$CARGO_TARGET_DIR/release/twin-server
CLIENT=$CARGO_TARGET_DIR/release/examples/bench_live
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

TMP=$(mktemp -d /tmp/citytwin-bench-live.XXXXXX)
SERVER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  if [ -d "$TMP/pg/data" ]; then $PGRUN "$PGBIN/pg_ctl" -D "$TMP/pg/data" -m immediate -w stop >/dev/null 2>&1 || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT

# A two-district test city (like LIVE_CITY of tests/common): 2 police, 2 fire engines and the
# city-management/gas crews of the two districts without a government office.
cat > "$TMP/city.geojson" <<'JSON'
{"type":"FeatureCollection","features":[
{"type":"Feature","properties":{"boundary":"administrative","adcode":910001,"name":"西区"},"geometry":{"type":"Polygon","coordinates":[[[123.40,41.78],[123.43,41.78],[123.43,41.82],[123.40,41.82],[123.40,41.78]]]}},
{"type":"Feature","properties":{"boundary":"administrative","adcode":910002,"name":"东区"},"geometry":{"type":"Polygon","coordinates":[[[123.43,41.78],[123.46,41.78],[123.46,41.82],[123.43,41.82],[123.43,41.78]]]}},
{"type":"Feature","properties":{"amenity":"police","name":"西区派出所"},"geometry":{"type":"Point","coordinates":[123.41,41.80]}},
{"type":"Feature","properties":{"amenity":"fire_station","name":"东区消防站"},"geometry":{"type":"Point","coordinates":[123.45,41.80]}},
{"type":"Feature","properties":{"building":"yes","height":10},"geometry":{"type":"Polygon","coordinates":[[[123.420,41.800],[123.421,41.800],[123.421,41.801],[123.420,41.801],[123.420,41.800]]]}}
]}
JSON
RUST_LOG=warn "$BIN" build --source "$TMP/city.geojson" --out "$TMP/city" --no-tiles --no-3dtiles >/dev/null

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$PORT

run_one() { # $1 = label, $2 = --db value
  # Reads (the subscribers) anonymous, writes with the admin key; no rate or stream caps in a benchmark.
  RUST_LOG=warn "$BIN" serve --model "$TMP/city" --addr "127.0.0.1:$PORT" --db "$2" --sla-check-ms 60000 \
    --anonymous-read --admin-token-file "$TMP/admin.key" --rate-ip 0 --rate-token 0 --max-streams 0 >/dev/null &
  SERVER_PID=$!
  for _ in $(seq 1 200); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.1; done
  for _ in $(seq 1 50); do [ -s "$TMP/admin.key" ] && break; sleep 0.1; done
  export CITYTWIN_TOKEN="$(cat "$TMP/admin.key")"
  echo "== $1"
  "$CLIENT" latency "$BASE" "$SUBS" "$EVENTS" "$RATE"
  "$CLIENT" writes "$BASE" "$WRITERS" "$SECS"
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
}

run_one "SQLite (WAL, synchronous=NORMAL)" "sqlite:$TMP/live.sqlite"

PGBIN=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
PGRUN=""
if [ -x "$PGBIN/initdb" ]; then
  mkdir -p "$TMP/pg"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$TMP/pg"; chmod 755 "$TMP"; PGRUN="runuser -u postgres --"; fi
  PGPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  $PGRUN "$PGBIN/initdb" -D "$TMP/pg/data" -U postgres --auth=trust >/dev/null
  # Durable defaults (fsync on, synchronous_commit on): the figures are for acknowledged writes.
  $PGRUN "$PGBIN/pg_ctl" -D "$TMP/pg/data" -l "$TMP/pg/log" -o "-p $PGPORT -k $TMP/pg -c listen_addresses=''" -w start >/dev/null
  $PGRUN "$PGBIN/createdb" -h "$TMP/pg" -p "$PGPORT" -U postgres citytwin
  run_one "PostgreSQL 15 (local, unix socket, fsync on)" "host=$TMP/pg port=$PGPORT user=postgres dbname=citytwin"
else
  echo "PostgreSQL binaries not found in $PGBIN: skipped (scripts/install-deps.sh installs them)"
fi
