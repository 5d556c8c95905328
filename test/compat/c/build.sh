#!/usr/bin/env bash
# Builds the C compatibility client against Debian's libnats (libnats-dev) into $COMPAT_CACHE/c.
# Idempotent: recompiles only when compat.c is newer than the binary.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${COMPAT_CACHE:-${TENANT_GATEWAY_TOOLS:-$HOME/.cache/tenant-gateway}/compat}/c"
mkdir -p "$cache"
if [ ! -x "$cache/compat-c" ] || [ "$here/compat.c" -nt "$cache/compat-c" ]; then
  if [ ! -f /usr/include/nats/nats.h ]; then
    echo "libnats-dev is not installed (apt-get install -y libnats-dev)" >&2
    exit 1
  fi
  # shellcheck disable=SC2046
  gcc -std=c11 -D_DEFAULT_SOURCE -O1 -g -Wall -Wextra -o "$cache/compat-c.tmp" "$here/compat.c" \
    $(pkg-config --cflags --libs libnats 2>/dev/null || echo -lnats) -lpthread
  mv "$cache/compat-c.tmp" "$cache/compat-c"
fi
