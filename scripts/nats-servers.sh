#!/usr/bin/env bash
# The supported nats-server versions, side by side:
#   scripts/nats-servers.sh install   Debian's nats-server (apt) and the newest release (go install),
#                                     plus the nats CLI the compatibility suite drives
#   scripts/nats-servers.sh list      "<version> <path>" per supported server, oldest first
# The newest one lives in its own directory (never on PATH), so PATH's nats-server stays Debian's.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
. "$here/versions.env"
cache="${TENANT_GATEWAY_TOOLS:-$HOME/.cache/tenant-gateway}"
newest_dir="$cache/nats-server-$NEWEST_NATS_SERVER"
natscli_dir="$cache/natscli-$NATSCLI"
debian_bin=/usr/sbin/nats-server

install() {
  if [ ! -x "$debian_bin" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq nats-server >/dev/null
  fi
  if [ ! -x "$newest_dir/nats-server" ]; then
    GOBIN="$newest_dir" go install "github.com/nats-io/nats-server/v2@$NEWEST_NATS_SERVER"
  fi
  if [ ! -x "$natscli_dir/nats" ]; then
    GOBIN="$natscli_dir" go install "github.com/nats-io/natscli/nats@$NATSCLI"
  fi
}

list() {
  echo "$DEBIAN_NATS_SERVER $debian_bin"
  echo "${NEWEST_NATS_SERVER#v} $newest_dir/nats-server"
}

case "${1:-list}" in
  install) install; list ;;
  list) list ;;
  natscli) echo "$natscli_dir/nats" ;;
  *) echo "usage: $0 install|list|natscli" >&2; exit 2 ;;
esac
