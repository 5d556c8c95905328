#!/bin/sh
# Compose set-up, per edge component: an onboarding package made and downloaded once, unpacked into
# $EDGE_DIR (the component's own volume). Idempotent: a bundle already there is kept.
#   enroll.sh <tenant> <component> <partition> <type>
# Runs in the gateway image on the full data dir; TENANT_GATEWAY_CLI points elsewhere for tests.
set -eu

cli=${TENANT_GATEWAY_CLI:-/app/bin/tenant-gateway.js}
tg() { node "$cli" "$@"; }
tenant=$1 component=$2 partition=$3 type=$4
edge=${EDGE_DIR:-/export}

if [ -f "$edge/config/config.yaml" ]; then
  echo "edge bundle of $component.$partition.$tenant: exists"
  exit 0
fi
created=$(tg package create --tenant "$tenant" --component "$component" --partition "$partition" --type "$type" --gateway-url "${GATEWAY_URL:-tls://gateway:4222}" --json)
# The token goes to download through the environment, not the command line (ps shows that).
id=$(printf '%s' "$created" | node -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(0, "utf8")).package.id)')
TENANT_GATEWAY_PACKAGE_TOKEN=$(printf '%s' "$created" | node -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(0, "utf8")).token)')
export TENANT_GATEWAY_PACKAGE_TOKEN
tmp=$(mktemp -d)
tg package download "$id" --out "$tmp/bundle.tar.gz"
tar -xzf "$tmp/bundle.tar.gz" -C "$edge"
rm -rf "$tmp"
echo "edge bundle of $component.$partition.$tenant: unpacked into $edge"
