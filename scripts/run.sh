#!/usr/bin/env bash
# The main job (README): installs what it needs, builds the built-in Shenyang city, serves it and
# starts the viewer against it. Ctrl-C stops everything.
#   ADDR=127.0.0.1:8080 MODEL=models/shenyang scripts/run.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
bash scripts/install-deps.sh
bash scripts/fetch-boundaries.sh
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/citytwin/target}"
ADDR="${ADDR:-127.0.0.1:8080}"
MODEL="${MODEL:-models/shenyang}"
cargo build --release --locked -p twin-server -p viewer
BIN="$CARGO_TARGET_DIR/release"
"$BIN/twin-server" build --out "$MODEL"
# Demo mode: reads need no key (--anonymous-read); writes need the admin key, which the server
# writes (mode 0600) to $MODEL.admin.key on first start (README, Security).
"$BIN/twin-server" serve --model "$MODEL" --addr "$ADDR" --anonymous-read --admin-token-file "$MODEL.admin.key" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 1 600); do
  if curl -fsS "http://$ADDR/healthz" >/dev/null 2>&1; then break; fi
  kill -0 $SERVER 2>/dev/null || { echo "run: the server exited"; exit 1; }
  sleep 0.1
done
# The cockpit viewer dispatches with a dispatcher key of its own (made once, kept 0600 beside the
# model); leaders' screens can run the viewer without --token (anonymous read).
if [ ! -s "$MODEL.dispatcher.key" ]; then
  (umask 077; "$BIN/twin-server" token create --db "sqlite:$MODEL.live.sqlite" --role dispatcher \
      --name "cockpit-$(date +%s)" > "$MODEL.dispatcher.key")
fi
"$BIN/viewer" --server "http://$ADDR" --token "$(cat "$MODEL.dispatcher.key")" || true
echo "run: serving http://$ADDR/ — Ctrl-C to stop"
wait $SERVER
