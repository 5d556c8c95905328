#!/usr/bin/env bash
# Nothing to build: the program runs from source with tsx. Checks that the `nats` v2 package is installed.
set -euo pipefail
cd "$(dirname "$0")/../../.."
missing=()
for pkg in nats tsx; do
  [ -f "node_modules/$pkg/package.json" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "node-v2: missing npm packages: ${missing[*]} (npm ci)" >&2
  exit 1
fi
