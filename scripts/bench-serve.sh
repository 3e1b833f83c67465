#!/usr/bin/env bash
# Tile serving benchmark: twin-server vs martin serving the SAME PMTiles file (the default city's
# DIR/tiles/shenyang.pmtiles), wrk with the same realistic tile mix, concurrency and duration.
# Rewrites the "Tile serving" section of docs/BENCHMARKS.md (between the serve-bench markers).
#   scripts/bench-serve.sh [DURATION_S] [CONNECTIONS]
# Needs: wrk (Debian package, installed if missing) and martin:
#   cargo install martin --version 1.14.0 --locked --no-default-features \
#     --features fonts,lambda,mbtiles,metrics,passthrough,pmtiles,postgres,sprites,styles,geojson,mlt
# (1.16 needs rustc 1.98; the default `rendering` feature clones maplibre-native from GitHub in its
# build script, which fails offline; `webui` is left out too). Without martin, only twin-server is
# measured.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
DUR="${1:-20}"
CONN="${2:-64}"
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

"$BIN" build --out "$TMP/m" >/dev/null 2>"$TMP/build.log"
ARCHIVE="$(readlink -f "$TMP/m")/tiles/shenyang.pmtiles"
[ -f "$ARCHIVE" ] || { echo "no archive at $ARCHIVE" >&2; exit 1; }

wait_up() { for _ in $(seq 1 200); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done; echo "server at $1 did not come up" >&2; exit 1; }

TS_PORT=18181; MARTIN_PORT=18282
RUST_LOG=warn "$BIN" serve --model "$TMP/m" --addr 127.0.0.1:$TS_PORT --anonymous-read --rate-ip 0 --rate-token 0 >/dev/null 2>"$TMP/ts.log" &
PIDS+=($!)
wait_up "http://127.0.0.1:$TS_PORT/healthz"

# The tile mix: existing tiles (HTTP 200 from twin-server) in a window around 市府广场, weighted to
# z12-z16 (z12 10 %, z13 15 %, z14 25 %, z15 25 %, z16 25 %), 20,000 paths, fixed seed.
python3 - "$TS_PORT" "$TMP/paths.txt" <<'PY'
import math, random, sys, urllib.request
port, out = sys.argv[1], sys.argv[2]
lon, lat = 123.4315, 41.8057
def tile(z):
    n = 2 ** z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y
weights = {12: 0.10, 13: 0.15, 14: 0.25, 15: 0.25, 16: 0.25}
radius = {12: 2, 13: 4, 14: 6, 15: 10, 16: 16}
random.seed(20251122)
pool = {}
for z, r in radius.items():
    cx, cy = tile(z)
    ok = []
    for x in range(cx - r, cx + r + 1):
        for y in range(cy - r, cy + r + 1):
            req = urllib.request.Request(f"http://127.0.0.1:{port}/tiles/shenyang/{z}/{x}/{y}.mvt", headers={"Accept-Encoding": "gzip"})
            with urllib.request.urlopen(req) as resp:
                if resp.status == 200:
                    ok.append((z, x, y))
    pool[z] = ok
    print(f"z{z}: {len(ok)} tiles", file=sys.stderr)
zs = list(weights)
with open(out, "w") as f:
    for _ in range(20000):
        z = random.choices(zs, [weights[k] for k in zs])[0]
        print("%d/%d/%d" % random.choice(pool[z]), file=f)
PY
NTILES=$(sort -u "$TMP/paths.txt" | wc -l)

cat > "$TMP/mix.lua" <<LUA
local paths = {}
for line in io.lines("$TMP/paths.txt") do paths[#paths + 1] = line end
local prefix = os.getenv("TILE_PREFIX")
local suffix = os.getenv("TILE_SUFFIX") or ""
local i = 0
request = function()
  i = i % #paths + 1
  return wrk.format("GET", prefix .. paths[i] .. suffix, {["Accept-Encoding"] = "gzip"})
end
LUA

# One wrk run: prints "rps p50_ms p99_ms non2xx".
run_wrk() {
  local base="$1" prefix="$2" suffix="$3"
  TILE_PREFIX="$prefix" TILE_SUFFIX="$suffix" wrk -t2 -c"$CONN" -d"${DUR}s" --latency -s "$TMP/mix.lua" "$base" >"$TMP/wrk.out" 2>&1
  python3 - "$TMP/wrk.out" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
def ms(v, u): return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[u]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
p = dict((k, ms(v, u)) for k, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)", t, re.M))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
errs = re.search(r"Socket errors: (.*)", t)
print(f"{rps:.0f} {p['50']:.2f} {p['99']:.2f} {bad.group(1) if bad else 0} {'yes' if errs else 'no'}")
PY
}

# Correctness first: the same tile bytes from both servers.
P1="$(sed -n 1p "$TMP/paths.txt")"
curl -s -H 'Accept-Encoding: gzip' -o "$TMP/ts.tile" "http://127.0.0.1:$TS_PORT/tiles/shenyang/$P1.mvt"

MARTIN=""
if command -v martin >/dev/null; then
  martin --version >"$TMP/martin.version" 2>&1 || true
  RUST_LOG=warn martin --listen-addresses 127.0.0.1:$MARTIN_PORT "$ARCHIVE" >"$TMP/martin.log" 2>&1 &
  PIDS+=($!)
  wait_up "http://127.0.0.1:$MARTIN_PORT/catalog"
  curl -s -H 'Accept-Encoding: gzip' -o "$TMP/martin.tile" "http://127.0.0.1:$MARTIN_PORT/shenyang/$P1"
  if cmp -s "$TMP/ts.tile" "$TMP/martin.tile"; then SAME="identical"; else SAME="DIFFERENT"; fi
  MARTIN="$(head -1 "$TMP/martin.version")"
fi

# Warm up both, then alternate runs: twin-server, martin, twin-server, martin; report the median
# (of 2 = the better) run per server.
rows=""
declare -A RES
warm() { TILE_PREFIX="$2" TILE_SUFFIX="$3" wrk -t2 -c"$CONN" -d3s -s "$TMP/mix.lua" "$1" >/dev/null 2>&1; }
warm "http://127.0.0.1:$TS_PORT" "/tiles/shenyang/" ".mvt"
[ -n "$MARTIN" ] && warm "http://127.0.0.1:$MARTIN_PORT" "/shenyang/" ""
for round in 1 2; do
  RES["ts$round"]="$(run_wrk "http://127.0.0.1:$TS_PORT" "/tiles/shenyang/" ".mvt")"
  echo "bench-serve: twin-server round $round: ${RES[ts$round]}"
  if [ -n "$MARTIN" ]; then
    RES["m$round"]="$(run_wrk "http://127.0.0.1:$MARTIN_PORT" "/shenyang/" "")"
    echo "bench-serve: martin round $round: ${RES[m$round]}"
  fi
done
best() { printf '%s\n%s\n' "$1" "$2" | sort -k1,1 -g | tail -1; }
fmt() { read -r rps p50 p99 bad errs <<<"$2"; echo "| $1 | $(python3 -c "print(f'{$rps:,.0f}')") | $p50 | $p99 | $bad | $errs |"; }
rows+="$(fmt "twin-server $(git describe --always --dirty 2>/dev/null)" "$(best "${RES[ts1]}" "${RES[ts2]}")")"$'\n'
if [ -n "$MARTIN" ]; then
  rows+="$(fmt "$MARTIN" "$(best "${RES[m1]}" "${RES[m2]}")")"$'\n'
  MNOTE="Both servers answered the first tile of the mix with $SAME bytes (gzip as stored)."
else
  MNOTE="martin was not installed (see the header of scripts/bench-serve.sh for the install command that works offline), so only twin-server was measured."
fi

CPU="$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)"
SECTION="$(cat <<MD
<!-- serve-bench:start -->
## Tile serving (\`GET /tiles/{name}/{z}/{x}/{y}.mvt\`) — twin-server vs martin

Command: \`scripts/bench-serve.sh $DUR $CONN\` — release builds; both servers serve the same file,
the default city's \`tiles/shenyang.pmtiles\` ($(du -h "$ARCHIVE" | cut -f1)); load from
\`wrk -t2 -c$CONN -d${DUR}s --latency\` with a Lua script cycling through 20,000 tile paths
($NTILES distinct existing tiles around 市府广场, z12 10 %, z13 15 %, z14 25 %, z15 25 %, z16 25 %,
fixed seed), \`Accept-Encoding: gzip\` (both send the stored gzip bytes). Two alternating rounds
per server after a warm-up; the better round is shown. Load generator and servers share the
machine's cores.

Machine: $CPU, $(nproc) cores, $(free -g | awk '/^Mem:/{print $2}') GiB RAM, $(date -u +%Y-%m-%d).

| server | requests/s | p50 ms | p99 ms | non-2xx | socket errors |
|---|---|---|---|---|---|
$rows
$MNOTE Goal (issue 3): throughput at least martin's, p99 no worse.
<!-- serve-bench:end -->
MD
)"
python3 - "$SECTION" <<'PY'
import re, sys
p = "docs/BENCHMARKS.md"
s = open(p).read()
sec = sys.argv[1]
if "<!-- serve-bench:start -->" in s:
    s = re.sub(r"<!-- serve-bench:start -->.*?<!-- serve-bench:end -->", lambda m: sec, s, flags=re.S)
else:
    s = s.rstrip("\n") + "\n\n" + sec + "\n"
open(p, "w").write(s)
PY
echo "bench-serve: wrote the tile serving section of docs/BENCHMARKS.md"
