#!/usr/bin/env bash
# The README's test command (`npm test`): build, typecheck and lint, the whole test suite against
# every supported nats-server version (scripts/nats-servers.sh list), then the compatibility suite
# (stock clients in several languages, the nats CLI, both server versions).
# TEST_SERVERS=2.9.10 (a version from the list) runs the suite against that version only;
# SKIP_COMPAT=1 leaves the compatibility suite out (for a quick local run).
set -euo pipefail
cd "$(dirname "$0")/.."

npm run build
npm run typecheck
npm run lint

servers=$(scripts/nats-servers.sh list)
while read -r version bin; do
  if [ -n "${TEST_SERVERS:-}" ] && [[ ",$TEST_SERVERS," != *",$version,"* ]]; then continue; fi
  if [ ! -x "$bin" ]; then
    echo "nats-server $version is not installed at $bin: run scripts/nats-servers.sh install" >&2
    exit 1
  fi
  echo "== test suite against nats-server $version ($bin)"
  NATS_SERVER_BIN="$bin" npx ava
done <<< "$servers"

if [ -z "${SKIP_COMPAT:-}" ]; then
  echo "== compatibility suite"
  node --import tsx test/compat/run.ts
fi
