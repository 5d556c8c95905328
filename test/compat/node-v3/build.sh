#!/usr/bin/env bash
# Nothing to build: the program runs from source with tsx. Checks that the v3 packages are installed.
set -euo pipefail
cd "$(dirname "$0")/../../.."
missing=()
for pkg in @nats-io/transport-node @nats-io/jetstream @nats-io/kv @nats-io/obj @nats-io/services tsx; do
  [ -f "node_modules/$pkg/package.json" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "node-v3: missing npm packages: ${missing[*]} (npm ci)" >&2
  exit 1
fi
