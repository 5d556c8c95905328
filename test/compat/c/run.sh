#!/usr/bin/env bash
# Runs the C compatibility client (libnats) with the harness contract's NTG_* environment.
set -euo pipefail
cache="${COMPAT_CACHE:-${TENANT_GATEWAY_TOOLS:-$HOME/.cache/tenant-gateway}/compat}/c"
exec "$cache/compat-c"
