#!/usr/bin/env bash
# Self-test of the C client against a plain nats-server: see test/compat/rust/selftest.sh.
#   test/compat/c/selftest.sh [scenario,...]
exec "$(dirname "$0")/../rust/selftest.sh" c "$@"
