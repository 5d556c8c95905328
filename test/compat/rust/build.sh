#!/usr/bin/env bash
# Builds the Rust compatibility client (async-nats from crates.io, versions locked in Cargo.lock)
# into $COMPAT_CACHE/rust/target (CARGO_TARGET_DIR), so CI can keep that directory between runs.
# Idempotent; cargo returns at once when the build is current. Debug profile: a release build
# takes longer to compile on this 2-core machine and the suite does not need the speed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${COMPAT_CACHE:-${TENANT_GATEWAY_TOOLS:-$HOME/.cache/tenant-gateway}/compat}/rust"
mkdir -p "$cache"
CARGO_TARGET_DIR="$cache/target" cargo build --locked --quiet --manifest-path "$here/Cargo.toml"
