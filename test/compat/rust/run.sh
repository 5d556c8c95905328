#!/usr/bin/env bash
# Runs the Rust compatibility client (async-nats) with the harness contract's NTG_* environment.
set -euo pipefail
cache="${COMPAT_CACHE:-${TENANT_GATEWAY_TOOLS:-$HOME/.cache/tenant-gateway}/compat}/rust"
exec "$cache/target/debug/compat-rust"
