#!/usr/bin/env bash
# Debian's Chromium for the console's browser test (test/console-browser.test.ts drives it with
# playwright-core at /usr/bin/chromium; no browser is ever downloaded by the test tooling).
# Idempotent: does nothing when /usr/bin/chromium is there.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
/usr/bin/chromium --version
