#!/usr/bin/env bash
# The README's test command (`npm test`): build, typecheck and lint, the whole test suite against
# every supported nats-server version (scripts/nats-servers.sh list; the files that do not depend on
# the version against the first only), then the compatibility suite (stock clients in several
# languages, the nats CLI, both server versions).
# TEST_SERVERS=2.9.10 (a version from the list) runs the suite against that version only;
# SKIP_COMPAT=1 leaves the compatibility suite out (for a quick local run).
set -euo pipefail
cd "$(dirname "$0")/.."

npm run build
npm run typecheck
npm run lint

# Files listed in test/server-independent.txt run against the first version only (all of them
# when TEST_SERVERS names a single version); every other file runs against every version.
mapfile -t independent < <(grep -v '^#' test/server-independent.txt | sed '/^$/d')
mapfile -t dependent < <(ls test/*.test.ts | grep -vxF -f <(printf '%s\n' "${independent[@]}"))

servers=$(scripts/nats-servers.sh list)
first=1
while read -r version bin; do
  if [ -n "${TEST_SERVERS:-}" ] && [[ ",$TEST_SERVERS," != *",$version,"* ]]; then continue; fi
  if [ ! -x "$bin" ]; then
    echo "nats-server $version is not installed at $bin: run scripts/nats-servers.sh install" >&2
    exit 1
  fi
  if [ "$first" = 1 ]; then
    echo "== test suite against nats-server $version ($bin)"
    NATS_SERVER_BIN="$bin" npx ava
    first=0
  else
    echo "== test suite against nats-server $version ($bin), without the files of test/server-independent.txt"
    NATS_SERVER_BIN="$bin" npx ava "${dependent[@]}"
  fi
done <<< "$servers"

if [ -z "${SKIP_COMPAT:-}" ]; then
  echo "== compatibility suite"
  node --import tsx test/compat/run.ts
fi
