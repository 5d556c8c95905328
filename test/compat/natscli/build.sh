#!/usr/bin/env bash
# The nats CLI at the version pinned in scripts/versions.env; scripts/nats-servers.sh installs it
# (go install into the tools cache) when it is missing.
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
nats_bin="$("$root/scripts/nats-servers.sh" natscli)"
if [ ! -x "$nats_bin" ]; then
  "$root/scripts/nats-servers.sh" install >/dev/null
fi
[ -x "$nats_bin" ] || { echo "the nats CLI is not at $nats_bin after scripts/nats-servers.sh install" >&2; exit 1; }
command -v node >/dev/null || { echo "node is needed for the JSON checks" >&2; exit 1; }
