#!/usr/bin/env bash
# Builds the Python compatibility client: a venv under $COMPAT_CACHE/python with nats-py pinned in
# requirements.txt (pip's cache lives there too, so CI can keep the whole directory between runs).
# Idempotent; returns at once when the venv already holds exactly these requirements.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${COMPAT_CACHE:-${TENANT_GATEWAY_TOOLS:-$HOME/.cache/tenant-gateway}/compat}/python"
venv="$cache/venv"
stamp="$venv/.requirements"
if [ -x "$venv/bin/python" ] && cmp -s "$here/requirements.txt" "$stamp"; then
  exit 0
fi
mkdir -p "$cache"
python3 -m venv --clear "$venv"
PIP_CACHE_DIR="$cache/pip-cache" "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
cp "$here/requirements.txt" "$stamp"
