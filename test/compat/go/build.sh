#!/usr/bin/env bash
# Builds the Go compatibility client (nats.go, versions locked in go.mod/go.sum) into
# $COMPAT_CACHE/go, with the module and build caches there too so CI can keep the directory
# between runs. Idempotent: go build returns quickly when nothing changed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${COMPAT_CACHE:-${TENANT_GATEWAY_TOOLS:-$HOME/.cache/tenant-gateway}/compat}/go"
if ! command -v go >/dev/null 2>&1; then
  echo "go is not installed (the Go toolchain builds this client)" >&2
  exit 1
fi
mkdir -p "$cache"
cd "$here"
GOMODCACHE="$cache/gomod" GOCACHE="$cache/gocache" GOFLAGS="-mod=readonly -buildvcs=false" go build -o "$cache/compat-go.tmp" .
mv "$cache/compat-go.tmp" "$cache/compat-go"
