#!/usr/bin/env bash
# Access-control overhead benchmark (docs/BENCHMARKS.md, "Access control overhead"): requests/s
# and p50/p99 latency of a tile route and an API read route on ONE release twin-server, for
#   anonymous — no Authorization header, allowed by --anonymous-read (policy lookup only),
#   key       — a leader key: Bearer parsing, SHA-256, key lookup (store read, cached 5 s), role
#               permissions, per-key bucket (off here),
#   admin     — the bootstrap admin key (same path, the admin role).
# Rate limits are off (--rate-ip 0 --rate-token 0) so only the checks are measured. wrk, keep-alive.
# Rewrites the section between the auth-bench markers of docs/BENCHMARKS.md.
#   scripts/bench-auth.sh [DURATION_S] [CONNECTIONS]        (default 10 s, 32 connections)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
DUR="${1:-10}"
CONN="${2:-32}"
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/citytwin/target}"
command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null
bash scripts/fetch-boundaries.sh >/dev/null
if [ -n "${TWIN_BIN:-}" ]; then BIN="$TWIN_BIN"; else
  cargo build --release --locked -p twin-server
  BIN="$CARGO_TARGET_DIR/release/twin-server"
fi
TMP="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

"$BIN" build --out "$TMP/m" --no-3dtiles >/dev/null 2>"$TMP/build.log"
DB="sqlite:$TMP/live.sqlite"
LEADER_KEY="$("$BIN" token create --db "$DB" --role leader --name bench-leader 2>/dev/null | grep -oE 'ctk_[A-Za-z0-9_]+' | head -n1)"
[ -n "$LEADER_KEY" ] || { echo "no leader key" >&2; exit 1; }

PORT=18383
RUST_LOG=warn "$BIN" serve --model "$TMP/m" --db "$DB" --addr 127.0.0.1:$PORT --anonymous-read --rate-ip 0 --rate-token 0 \
  --admin-token-file "$TMP/admin.key" --simulate off >/dev/null 2>"$TMP/serve.log" &
PIDS+=($!)
for _ in $(seq 1 300); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/healthz" && break; sleep 0.1; done
BASE="http://127.0.0.1:$PORT"
ADMIN_KEY="$(tr -d '[:space:]' < "$TMP/admin.key")"   # written by serve (a new bootstrap key)

# Tiles: every existing z14 tile in a 13 × 13 window around 市府广场 (fixed list), round robin.
python3 - "$PORT" "$TMP/paths.txt" <<'PY'
import math, sys, urllib.request
port, out = sys.argv[1], sys.argv[2]
lon, lat, z = 123.4315, 41.8057, 14
n = 2 ** z
cx = int((lon + 180) / 360 * n)
cy = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
ok = []
for x in range(cx - 6, cx + 7):
    for y in range(cy - 6, cy + 7):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/tiles/shenyang/{z}/{x}/{y}.mvt") as r:
                if r.status == 200:
                    ok.append(f"/tiles/shenyang/{z}/{x}/{y}.mvt")
        except Exception:
            pass
open(out, "w").write("\n".join(ok) + "\n")
print(f"{len(ok)} tiles", file=sys.stderr)
PY
NTILES=$(wc -l < "$TMP/paths.txt")
echo "/api/units" > "$TMP/api.txt"

cat > "$TMP/mix.lua" <<LUA
local paths = {}
for line in io.lines(os.getenv("PATHS")) do paths[#paths + 1] = line end
local key = os.getenv("KEY") or ""
local headers = {["Accept-Encoding"] = "gzip"}
if key ~= "" then headers["Authorization"] = "Bearer " .. key end
local i = 0
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i], headers)
end
LUA

# One wrk run: prints "rps p50_ms p99_ms non2xx".
run_wrk() {
  PATHS="$1" KEY="$2" wrk -t2 -c"$CONN" -d"${DUR}s" --latency -s "$TMP/mix.lua" "$BASE" >"$TMP/wrk.out" 2>&1
  python3 - "$TMP/wrk.out" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
def ms(v, u): return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[u]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
p = dict((k, ms(v, u)) for k, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)", t, re.M))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
print(f"{rps:.0f} {p['50']:.2f} {p['99']:.2f} {bad.group(1) if bad else 0}")
PY
}

# Check each mode is what it claims (whoami), then warm up once.
for k in "" "$LEADER_KEY" "$ADMIN_KEY"; do
  h=(); [ -n "$k" ] && h=(-H "Authorization: Bearer $k")
  curl -sf "${h[@]}" "$BASE/api/auth/whoami" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("whoami:", d["name"], d["role"], "authenticated" if d["authenticated"] else "anonymous")'
done
run_wrk "$TMP/paths.txt" "" >/dev/null

ROWS=()
for route in tile api; do
  paths="$TMP/paths.txt"; label="\`GET /tiles/shenyang/14/{x}/{y}.mvt\` ($NTILES tiles)"
  if [ "$route" = api ]; then paths="$TMP/api.txt"; label="\`GET /api/units\` (store read)"; fi
  for mode in anonymous key admin; do
    k=""; [ "$mode" = key ] && k="$LEADER_KEY"; [ "$mode" = admin ] && k="$ADMIN_KEY"
    read -r rps p50 p99 bad < <(run_wrk "$paths" "$k")
    echo "$route $mode: $rps req/s, p50 $p50 ms, p99 $p99 ms, non-2xx $bad"
    ROWS+=("| $label | $mode | $rps | $p50 | $p99 | $bad |")
  done
done

LOAD="$(cut -d' ' -f1-3 /proc/loadavg)"
CPU="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores"
COMMIT="$(git rev-parse --short HEAD)"
{
  echo "<!-- auth-bench:begin -->"
  echo "Command: \`scripts/bench-auth.sh $DUR $CONN\` — release build, commit $COMMIT, default city"
  echo "(\`build --no-3dtiles\`), SQLite store, one server with \`--anonymous-read --rate-ip 0 --rate-token 0\`;"
  echo "wrk 2 threads, $CONN keep-alive connections, $DUR s per row after a warm-up run."
  echo "Machine: $CPU; load average at the end $LOAD (other jobs share the cores: compare rows, not absolutes)."
  echo
  echo "| route | identity | req/s | p50 ms | p99 ms | non-2xx |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  echo "<!-- auth-bench:end -->"
} > "$TMP/section.md"
python3 - "$TMP/section.md" docs/BENCHMARKS.md <<'PY'
import sys
sec, doc = open(sys.argv[1]).read(), sys.argv[2]
t = open(doc).read()
b, e = "<!-- auth-bench:begin -->", "<!-- auth-bench:end -->"
if b in t:
    t = t[: t.index(b)] + sec.rstrip("\n") + t[t.index(e) + len(e):]
else:
    t = t.rstrip("\n") + "\n\n## Access control overhead (`scripts/bench-auth.sh`)\n\n" + sec
open(doc, "w").write(t)
PY
cat "$TMP/section.md"
