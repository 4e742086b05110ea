#!/usr/bin/env bash
# Checks api/openapi.json against a live herald with schemathesis (the hash-pinned PyPI package in
# requirements.txt, installed into tests/schemathesis/.venv). Three servers, three runs:
#   1. defaults, no API_KEY;
#   2. API_KEY set, AUTO_CREATE_TOPICS=false, a small MAX_MESSAGE_BYTES and a MAX_PUBLISH_RATE, so
#      401, 404 on publish, 413 and 429 are reachable; the key goes in X-API-Key;
#   3. JWT_SECRET set (tokens on, no PERMISSIONS_FILE, so a caller without credentials may do
#      nothing), and an admin token minted by `herald token --admin` in Authorization: Bearer.
# Fails on any 5xx and any response the document does not describe (status, content type, body
# schema, headers), on a 405 without a matching Allow header, on a schema-valid request that is
# refused or an invalid one that is accepted. The WebSocket routes are left out: a generated
# request with valid upgrade headers gets 101 and turns the HTTP client's pooled connection into a
# WebSocket (tests/api_docs.rs checks their documented refusals instead). Bounded: --max-examples per operation and --max-time
# per run; about two minutes in total on a loaded 2-core machine.
#
#   tests/schemathesis/run.sh
#   HERALD_BIN=target/release/herald tests/schemathesis/run.sh
#   MAX_EXAMPLES=200 tests/schemathesis/run.sh      # a longer local hunt
#
# Without HERALD_BIN it uses target/release/herald or target/debug/herald, whichever was built
# last, and builds the debug one with `cargo build` when neither exists.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=loadtest/lib.sh
source "$ROOT/loadtest/lib.sh"
VENV=${SCHEMATHESIS_VENV:-$HERE/.venv}
PYTHON=${PYTHON:-python3}
REQ=$HERE/requirements.txt
WANT=$(sed -n 's/^schemathesis==\([0-9][0-9.]*\).*/\1/p' "$REQ")
ST=$VENV/bin/schemathesis
PY=$VENV/bin/python
MAX_EXAMPLES=${MAX_EXAMPLES:-25}
MAX_TIME=${MAX_TIME:-40}
START=$(date +%s)

echo "== schemathesis: install $WANT"
have_pinned() {
  [ -x "$ST" ] && "$ST" --version 2>/dev/null | grep -q "version $WANT\$"
}
if ! have_pinned; then
  pinned_venv "$VENV" "$REQ" "$PYTHON"
  have_pinned || { echo "run.sh: $ST is not schemathesis $WANT" >&2; exit 1; }
fi
"$ST" --version

echo "== schemathesis: herald binary"
BIN=$(herald_bin "$ROOT")
echo "$BIN ($(date -r "$BIN" '+%F %T'))"

TMP=$(mktemp -d)
SERVER_PID=
stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=
}
cleanup() {
  stop_server
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_server VAR=VALUE...: starts herald with those variables and sets URL.
start_server() {
  URL=
  for attempt in 1 2 3 4 5; do
    local port
    port=$(free_port_py "$PY")
    env "$@" HOST=127.0.0.1 PORT="$port" RUST_LOG=${RUST_LOG:-warn} "$BIN" >"$TMP/herald.log" 2>&1 &
    SERVER_PID=$!
    if wait_live_py "$PY" "http://127.0.0.1:$port" "$SERVER_PID"; then
      URL=http://127.0.0.1:$port
      return 0
    fi
    echo "attempt $attempt on port $port failed:" && tail -5 "$TMP/herald.log"
    stop_server
  done
  echo "herald did not start"
  exit 1
}

CHECKS=not_a_server_error,status_code_conformance,content_type_conformance
CHECKS=$CHECKS,response_schema_conformance,response_headers_conformance
CHECKS=$CHECKS,unsupported_method,allow_header_conformance,missing_required_header
CHECKS=$CHECKS,negative_data_rejection,positive_data_acceptance

PASSED=0
FAILED=0
FAILED_NAMES=
# run NAME [schemathesis options...]: one schemathesis run against $URL with $RUN_CHECKS (and
# the config file $RUN_CONFIG, when set).
run() {
  local name=$1
  shift
  echo "== schemathesis: $name against $URL"
  local t0 rc=0
  t0=$(date +%s)
  # One worker: the machine is small, and schemathesis 4.32 on CPython 3.11.7 hit
  # "AST constructor recursion depth mismatch" with two.
  # From the temporary directory, so hypothesis leaves its example database there.
  local config=()
  [ -z "${RUN_CONFIG:-}" ] || config=(--config-file "$RUN_CONFIG")
  (cd "$TMP" && timeout --kill-after=10 $((MAX_TIME + 60)) "$ST" ${config[@]+"${config[@]}"} run "$URL/openapi.json" \
    --checks "$RUN_CHECKS" --max-examples "$MAX_EXAMPLES" --max-time "$MAX_TIME" --workers 1 \
    --seed "${SEED:-20250825}" --output-truncate true --warnings off \
    --exclude-path-regex '^/ws' \
    "$@") >"$TMP/$name.out" 2>&1 || rc=$?
  # The summary is enough when all is well; everything when not.
  if [ "$rc" = 0 ]; then
    sed -n '/=== SUMMARY ===/,$p' "$TMP/$name.out"
  else
    cat "$TMP/$name.out"
    echo "-- herald log (last 20 lines)" && tail -20 "$TMP/herald.log"
  fi
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    local status=0
    wait "$SERVER_PID" 2>/dev/null || status=$?
    SERVER_PID=
    echo "-- herald exited during the run (status $status; 128+N is signal N)" && tail -20 "$TMP/herald.log"
    rc=1
  fi
  echo "-- $name: $([ "$rc" = 0 ] && echo ok || echo "FAILED (exit $rc)") in $(($(date +%s) - t0))s"
  if [ "$rc" = 0 ]; then
    PASSED=$((PASSED + 1))
  else
    FAILED=$((FAILED + 1))
    FAILED_NAMES="$FAILED_NAMES $name"
  fi
}

echo "== api/asyncapi.yaml and api/openapi.json: parse, and every \$ref resolves"
"$PY" - "$ROOT/api" <<'PY'
import json, sys, yaml
root = sys.argv[1]
docs = {
    "openapi.json": json.load(open(f"{root}/openapi.json")),
    "asyncapi.yaml": yaml.safe_load(open(f"{root}/asyncapi.yaml")),
}
assert docs["asyncapi.yaml"]["asyncapi"].startswith("3."), "not AsyncAPI 3"
def refs(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                yield v
            else:
                yield from refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from refs(v)
bad = []
for name, doc in docs.items():
    for ref in refs(doc):
        node = doc
        for part in ref.lstrip("#/").split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            bad.append(f"{name}: {ref}")
if bad:
    sys.exit("unresolved $ref:\n  " + "\n  ".join(bad))
print("ok")
PY

start_server
RUN_CHECKS=$CHECKS run open
stop_server

KEY="st-$RANDOM$RANDOM"
start_server API_KEY="$KEY" AUTO_CREATE_TOPICS=false MAX_MESSAGE_BYTES=512 MAX_PUBLISH_RATE=20
# ignored_auth: the same requests without the key (and with a wrong one) must answer 401.
RUN_CHECKS=$CHECKS,ignored_auth run keyed -H "X-API-Key: $KEY"
stop_server

# A fresh secret of 48 base64 characters (herald wants at least 32 bytes), passed in the
# environment only, as the server and `herald token` both read it.
SECRET=$("$PY" -c 'import base64, os; print(base64.b64encode(os.urandom(36)).decode())')
TOKEN=$(JWT_SECRET="$SECRET" "$BIN" token --admin --sub ci --ttl 15m)
start_server JWT_SECRET="$SECRET"
# The token is sent as `Authorization: Bearer` for the BearerToken scheme of the configuration,
# not with -H: schemathesis then knows which credential is the real one, and ignored_auth checks
# that without it (no credentials, or only a wrong one in any scheme) every route that needs a
# right answers 401. (Given as -H, a generated X-API-Key beside the valid token would look like
# the credential that was accepted.)
cat >"$TMP/token.toml" <<'TOML'
[auth.openapi.BearerToken]
bearer = "${HERALD_ST_TOKEN}"
TOML
HERALD_ST_TOKEN=$TOKEN RUN_CONFIG=$TMP/token.toml RUN_CHECKS=$CHECKS,ignored_auth run token
stop_server

echo "== schemathesis: done in $(($(date +%s) - START))s${FAILED_NAMES:+; failed:$FAILED_NAMES}"
echo "schemathesis: $PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
