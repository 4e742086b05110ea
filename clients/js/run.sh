#!/usr/bin/env bash
# The JavaScript client's checks (CI runs this): npm ci (typescript and ws pinned in
# package-lock.json), tsc --noEmit on index.d.ts, then node --test against the herald binary of
# this checkout: a single node behind a TCP proxy that cuts, freezes and stalls the connection,
# the same with JWT_SECRET for tokens refreshed in-band and refused (auth.test.mjs), a cluster
# (nats-server -js, three nodes, nginx), and a scripted server sending a cluster node's gap notice
# (gap.test.mjs). Its browser test is e2e/client.test.mjs, which e2e/run.sh runs. About 45
# seconds once installed.
#
#   clients/js/run.sh
#   HERALD_BIN=target/release/herald clients/js/run.sh
#
# Without HERALD_BIN it uses target/release/herald or target/debug/herald, whichever was built
# last, and builds the debug one with `cargo build` when neither exists.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
say() { echo "clients/js: $*" >&2; }
# shellcheck source=loadtest/lib.sh
source "$ROOT/loadtest/lib.sh"

echo "== clients/js: node, nats-server, nginx"
node --version
for tool in nats-server nginx; do
  if ! command -v "$tool" >/dev/null && [ ! -x "/usr/sbin/$tool" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool" >/dev/null
    else
      say "the cluster test needs $tool (Debian: apt-get install $tool)"
      exit 1
    fi
  fi
done

echo "== clients/js: npm ci (typescript, ws from package-lock.json)"
(cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)

echo "== clients/js: tsc --noEmit (index.d.ts, test/types.ts)"
(cd "$HERE" && timeout 120 ./node_modules/.bin/tsc --noEmit)

echo "== clients/js: herald binary"
BIN=$(herald_bin "$ROOT")
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
echo "$BIN ($(date -r "$BIN" '+%F %T'))"

echo "== clients/js: node --test"
cd "$HERE"
HERALD_BIN=$BIN timeout --kill-after=10 170 node --test --test-concurrency=1 --test-reporter=spec test/*.test.mjs
