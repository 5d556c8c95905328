#!/usr/bin/env bash
# Runs the Python compatibility client (nats-py) with the harness contract's NTG_* environment.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${COMPAT_CACHE:-${TENANT_GATEWAY_TOOLS:-$HOME/.cache/tenant-gateway}/compat}/python"
exec "$cache/venv/bin/python" -u "$here/compat.py"
