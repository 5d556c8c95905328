#!/usr/bin/env bash
# Runs the Go compatibility client (nats.go) with the harness contract's NTG_* environment.
set -euo pipefail
cache="${COMPAT_CACHE:-${TENANT_GATEWAY_TOOLS:-$HOME/.cache/tenant-gateway}/compat}/go"
exec "$cache/compat-go"
