#!/usr/bin/env bash
# Sensor ingest benchmark: observations/s stored by a release twin-server over HTTP batches
# (POST /api/sta/v1.1/CreateObservations, 5,000 observations a request, 4 concurrent clients) and
# over MQTT (mosquitto, 100 observations a message, QoS 1), into SQLite and into PostgreSQL 15.
# Each figure: observations stored / wall time from the first request to the last observation
# committed (counted through the STA API). Bounded: N_HTTP and N_MQTT observations per run.
#   scripts/bench-sensors.sh [N_HTTP] [N_MQTT]
# Needs mosquitto, mosquitto-clients, PostgreSQL 15 (scripts/install-deps.sh), curl, python3.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
N_HTTP="${1:-400000}"
N_MQTT="${2:-200000}"
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/citytwin/target}"
if [ -n "${TWIN_BIN:-}" ]; then BIN="$TWIN_BIN"; else
  cargo build --release --locked -p twin-server
  BIN="$CARGO_TARGET_DIR/release/twin-server"
fi
PGBIN="${PG_BINDIR:-/usr/lib/postgresql/15/bin}"
TMP="$(mktemp -d)"
chmod 755 "$TMP"
PIDS=()
PGDATA=""
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "$PGDATA" ]; then runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate -w stop >/dev/null 2>&1 || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT
"$BIN" build --out "$TMP/m" --no-tiles --no-3dtiles >/dev/null 2>"$TMP/build.log"

wait_up() { for _ in $(seq 1 300); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done; echo "server at $1 did not come up" >&2; exit 1; }
now() { date +%s.%N; }
count() { curl -sf "$1/api/sta/v1.1/Observations?\$count=true&\$top=0" | python3 -c 'import json,sys; print(json.load(sys.stdin)["@iot.count"])'; }

MQ_PORT=18883
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\n' $MQ_PORT > "$TMP/mosquitto.conf"
mosquitto -c "$TMP/mosquitto.conf" >/dev/null 2>&1 &
PIDS+=($!)

# 50 datastreams (PM2.5) in 50 Things; bodies: 5,000 observations over 50 datastreams.
python3 - "$TMP" <<'PY'
import json, sys, random
tmp = sys.argv[1]
random.seed(1)
with open(f"{tmp}/body.json", "w") as f:
    groups = []
    for ds in range(1, 51):
        rows = [[f"2026-11-22T{(i // 60) % 24:02d}:{i % 60:02d}:00Z", round(random.uniform(5, 60), 1)] for i in range(100)]
        groups.append({"Datastream": {"@iot.id": ds}, "components": ["phenomenonTime", "result"], "dataArray@iot.count": len(rows), "dataArray": rows})
    json.dump(groups, f)
with open(f"{tmp}/mqtt.txt", "w") as f:
    for i in range(2000):
        f.write(json.dumps([{"result": round(random.uniform(5, 60), 1), "phenomenonTime": f"2026-11-22T10:{j % 60:02d}:00Z"} for j in range(100)]) + "\n")
PY

run() { # $1 label, $2 --db value
  local label="$1" db="$2" port=18380 base
  base="http://127.0.0.1:$port"
  RUST_LOG=warn "$BIN" serve --model "$TMP/m" --addr 127.0.0.1:$port --db "$db" --mqtt mqtt://127.0.0.1:$MQ_PORT --simulate off \
    --anonymous-read --admin-token-file "$TMP/admin.key" --rate-ip 0 --rate-token 0 >/dev/null 2>"$TMP/serve-$label.log" &
  local pid=$!
  PIDS+=($pid)
  wait_up "$base/healthz"
  local auth="authorization: Bearer $(cat "$TMP/admin.key")"
  for ds in $(seq 1 50); do
    curl -sf -o /dev/null -H "$auth" -H 'content-type: application/json' "$base/api/sta/v1.1/Datastreams" -d "{\"name\":\"pm25 $ds\",\"description\":\"\",\"properties\":{\"sensorType\":\"pm25\",\"thresholds\":{\"warning\":75,\"alarm\":150,\"hysteresis\":5}},\"Thing\":{\"name\":\"station $ds\",\"description\":\"\",\"Locations\":[{\"name\":\"l\",\"description\":\"\",\"encodingType\":\"application/geo+json\",\"location\":{\"type\":\"Point\",\"coordinates\":[123.4,41.8]}}]},\"Sensor\":{\"name\":\"s\",\"description\":\"\",\"encodingType\":\"text/html\",\"metadata\":\"x\"},\"ObservedProperty\":{\"name\":\"PM2.5\",\"definition\":\"x\",\"description\":\"\"}}"
  done
  local reqs=$(( N_HTTP / 5000 )) t0 t1 c0 c1
  c0=$(count "$base")
  t0=$(now)
  seq 1 $reqs | xargs -P 4 -I{} curl -sf -o /dev/null -H "$auth" -H 'content-type: application/json' --data-binary @"$TMP/body.json" "$base/api/sta/v1.1/CreateObservations"
  t1=$(now)
  c1=$(count "$base")
  python3 -c "import sys; n=$c1-$c0; dt=$t1-$t0; print(f'$label HTTP CreateObservations: {n} observations in {dt:.2f} s = {n/dt:,.0f} obs/s')"
  # MQTT: 2 publishers, 100 observations a message, one datastream per publisher topic.
  local msgs=$(( N_MQTT / 100 ))
  c0=$(count "$base")
  t0=$(now)
  head -n $(( msgs / 2 )) "$TMP/mqtt.txt" | mosquitto_pub -h 127.0.0.1 -p $MQ_PORT -q 1 -t citytwin/datastreams/1/observations -l &
  local p1=$!
  head -n $(( msgs / 2 )) "$TMP/mqtt.txt" | mosquitto_pub -h 127.0.0.1 -p $MQ_PORT -q 1 -t citytwin/datastreams/2/observations -l
  wait $p1
  local want=$(( c0 + msgs * 100 ))
  for _ in $(seq 1 1200); do c1=$(count "$base"); [ "$c1" -ge "$want" ] && break; sleep 0.05; done
  t1=$(now)
  python3 -c "import sys; n=$c1-$c0; dt=$t1-$t0; print(f'$label MQTT: {n} observations in {dt:.2f} s = {n/dt:,.0f} obs/s')"
  kill $pid; wait $pid 2>/dev/null || true
}

run sqlite "sqlite:$TMP/live.sqlite"

PGDATA="$TMP/pg"
mkdir -p "$PGDATA" && chown postgres: "$PGDATA" "$TMP"
runuser -u postgres -- "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust >/dev/null
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" -l "$TMP/pg.log" -o "-p 15433 -k $TMP -c listen_addresses=''" -w start >/dev/null
runuser -u postgres -- "$PGBIN/createdb" -h "$TMP" -p 15433 -U postgres citytwin
run postgres "host=$TMP port=15433 user=postgres dbname=citytwin"
