#!/usr/bin/env bash
# Runs the Node v3 client scenarios (see test/compat/README.md for the environment).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../../.."
exec node --import tsx "$here/main.ts"
