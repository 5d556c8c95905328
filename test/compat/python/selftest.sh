#!/usr/bin/env bash
# Self-test of the Python client against a plain nats-server: see test/compat/rust/selftest.sh.
#   test/compat/python/selftest.sh [scenario,...]
exec "$(dirname "$0")/../rust/selftest.sh" python "$@"
