#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the tests start as real processes, then
# runs every test of the workspace. Extra arguments go to `cargo test` (e.g. `./test.sh --test cluster`).
set -euo pipefail
cd "$(dirname "$0")"

# tests/cluster.rs runs nats-server (JetStream) and nginx as real processes; the README's curl
# examples run through curl.
missing=()
for pkg in nats-server:nats-server nginx:nginx curl:curl; do
  command -v "${pkg%%:*}" >/dev/null || missing+=("${pkg##*:}")
done
if ((${#missing[@]})); then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "== installing ${missing[*]} (apt)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "test.sh: the tests need ${missing[*]}; install them (Debian: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi

# tests/ws_deflate.rs drives the Python `websockets` client, hash-pinned like CI's other Python
# tools (already there after the first run: pip checks the pins and installs nothing).
source loadtest/lib.sh
pinned_venv tests/python/.venv tests/python/requirements.txt

exec cargo test --workspace "$@"
