#!/usr/bin/env bash
# Runs the dashboard's end-to-end test (dashboard.test.mjs), the JavaScript client's browser
# test (client.test.mjs) and permessage-deflate in a browser (deflate.test.mjs) in headless Debian chromium with playwright-core pinned in
# package-lock.json. Installs chromium (apt, as root) and the npm package when missing. About 20
# seconds once installed.
#
#   e2e/run.sh
#   SCREENSHOT_PATH=$PWD/docs/dashboard.png e2e/run.sh     # refresh the README's screenshot
#   HERALD_BIN=target/release/herald e2e/run.sh
#
# Without HERALD_BIN it uses target/release/herald or target/debug/herald, whichever was built
# last, and builds the debug one with `cargo build` when neither exists.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=loadtest/lib.sh
source "$ROOT/loadtest/lib.sh"

echo "== e2e: chromium and node"
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  else
    echo "e2e/run.sh: no chromium at ${CHROMIUM:-/usr/bin/chromium}; install Debian's chromium" >&2
    exit 1
  fi
fi
"${CHROMIUM:-/usr/bin/chromium}" --version 2>/dev/null || true
node --version

echo "== e2e: npm ci (playwright-core from package-lock.json)"
(cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)

echo "== e2e: herald binary"
BIN=$(herald_bin "$ROOT")
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
echo "$BIN ($(date -r "$BIN" '+%F %T'))"

echo "== e2e: dashboard.test.mjs, client.test.mjs (clients/js/index.js in a page), seeds.test.mjs (each seed's snippet), deflate.test.mjs (permessage-deflate)"
cd "$HERE"
HERALD_BIN=$BIN timeout --kill-after=10 210 node --test --test-concurrency=1 --test-reporter=spec \
  dashboard.test.mjs client.test.mjs seeds.test.mjs deflate.test.mjs
