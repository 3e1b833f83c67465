#!/usr/bin/env bash
# Installs what CityTwin needs on Debian 12, idempotently: GDAL (library + tools), PostgreSQL 15
# with PostGIS 3 (for the PostGIS tests), PROJ tools and grids (cs2cs, egm96_15.gtx for --dem),
# networkx (the routing tests' reference), lavapipe (mesa-vulkan-drivers + libvulkan1: the viewer's
# off-screen CPU renderer) and cargo-nextest. Rust itself comes from rustup.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

PKGS=(build-essential pkg-config curl libgdal-dev libsqlite3-dev gdal-bin proj-bin proj-data python3-pip unzip
      postgresql-15 postgresql-15-postgis-3 postgresql-client-15 mosquitto mosquitto-clients
      python3-networkx  # independent shortest paths for scenes/tests/routing.rs
      python3-jsonschema  # tests/openapi.rs: real responses against the OpenAPI schemas
      mesa-vulkan-drivers libvulkan1)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  # The Debian package starts a cluster on 5432; the tests run their own throw-away servers.
  $SUDO systemctl disable --now postgresql >/dev/null 2>&1 || true
  # Likewise the packaged mosquitto on 1883: the MQTT tests start their own brokers.
  $SUDO systemctl disable --now mosquitto >/dev/null 2>&1 || true
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "install-deps: installing Rust with rustup"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "install-deps: installing cargo-nextest"
  cargo install --locked cargo-nextest
fi
# tests/openapi.rs: the external OpenAPI 3.1 validator (Debian 12 has no python3-openapi-spec-validator).
if ! python3 -c "import openapi_spec_validator" >/dev/null 2>&1; then
  echo "install-deps: installing openapi-spec-validator 0.9.0 (pip)"
  python3 -m pip install --quiet "openapi-spec-validator==0.9.0" 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages "openapi-spec-validator==0.9.0"
fi
bash "$(dirname "$0")/js-deps.sh"
echo "install-deps: ok (GDAL $(gdal-config --version), $(cargo --version))"
