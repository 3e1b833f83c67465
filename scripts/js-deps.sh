#!/usr/bin/env bash
# Installs the external validators and real clients the end-to-end tests drive (tests/js/:
# gltf-validator, CesiumJS, MapLibre GL JS, @mapbox/vector-tile, mvt-fixtures, playwright-core)
# from the locked package-lock.json, plus Debian's Chromium for the browser tests. Idempotent:
# npm ci runs only when the lock file changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# A CJK font so that browser screenshots of Chinese labels are legible.
dpkg-query -W -f='${Status}' fonts-noto-cjk 2>/dev/null | grep -q "install ok installed" || missing+=(fonts-noto-cjk)
if [ ${#missing[@]} -gt 0 ]; then
  echo "js-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

JS="$ROOT/tests/js"
stamp="$JS/node_modules/.citytwin-lock"
if [ ! -f "$stamp" ] || ! cmp -s "$JS/package-lock.json" "$stamp"; then
  echo "js-deps: npm ci in tests/js"
  (cd "$JS" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$JS/package-lock.json" "$stamp"
fi
echo "js-deps: ok (node $(node --version), $(chromium --version 2>/dev/null | head -1))"
