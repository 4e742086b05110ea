#!/usr/bin/env bash
# permessage-deflate, compress once (issue 22): one topic × SUBS subscribers, PAYLOAD-byte payloads
# of varied text (--text-payload: words and numbers, as JSON feeds carry; not random bytes, not one
# repeated byte), the same offered RATE with and without compression, each run against a fresh
# herald. Reports bytes on the wire per delivery (herald-load --deflate counts what its subscriber
# sockets read) and the server's CPU time per delivery (user + system from /proc), side by side.
#
#   loadtest/deflate.sh                       # 1,000 subscribers, 4 KiB, 50 msg/s, 10 s per run
#   SUBS=200 RATE=100 DURATION=5s loadtest/deflate.sh
#   BUILD=0 loadtest/deflate.sh               # use the release binaries as they are
#
# PEER=1 (the default when `node` is installed) adds a third run against loadtest/ws-peer, a
# minimal Node pub/sub server on the `ws` package that compresses every message per connection
# (npm ci there on first use): the cost compressing once avoids. It runs at PEER_RATE (default 5
# msg/s): one Node thread compressing 4 KiB for each of 1,000 sockets falls behind at 50 msg/s.
#
# Results (JSON lines) go to $OUT (default loadtest/results/deflate-<time>/results.jsonl) and a
# table to stdout. Loopback only; the server and the load generator share the machine, so run it
# on a quiet one and compare the two rows of one run, not runs of different days.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
say() { echo "deflate.sh: $*" >&2; }
# shellcheck source=loadtest/lib.sh
source "$ROOT/loadtest/lib.sh"

SUBS=${SUBS:-1000}
PAYLOAD=${PAYLOAD:-4096}
RATE=${RATE:-50}
DURATION=${DURATION:-10s}
BUILD=${BUILD:-1}
OUT=${OUT:-$ROOT/loadtest/results/deflate-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
: >"$RESULTS"

if ((BUILD)); then build_release "$ROOT"; fi
HERALD=${HERALD:-$ROOT/target/release/herald}
LOADGEN=$ROOT/target/release/herald-load
raise_fd_limit
TICKS_PER_SEC=$(getconf CLK_TCK 2>/dev/null || echo 100)

SERVER_PID=""
trap '[[ -z "$SERVER_PID" ]] || stop_pids 50 "$SERVER_PID" || true' EXIT

PEER=${PEER:-$(command -v node >/dev/null && echo 1 || echo 0)}

# run MODE [SERVER] — a fresh server (herald, or the ws peer), one fanout run with --deflate
# MODE, one JSON line with the server's CPU.
run() {
    local mode=$1 server=${2:-herald} rate=${3:-$RATE} port before after line deliveries status=0
    port=$(free_port)
    if [[ "$server" == ws-peer ]]; then
        node "$ROOT/loadtest/ws-peer/server.mjs" "$port" >"$OUT/$server-$mode.log" 2>&1 &
    else
        env HOST=127.0.0.1 PORT="$port" RUST_LOG=warn SHUTDOWN_TIMEOUT_SECS=2 "$HERALD" \
            >"$OUT/$server-$mode.log" 2>&1 &
    fi
    SERVER_PID=$!
    wait_port "$port" "$SERVER_PID" || { say "$server did not start; see $OUT/$server-$mode.log"; return 1; }
    say "$server, deflate $mode: $SUBS subscribers, $PAYLOAD B text payloads, $rate msg/s, $DURATION"
    before=$(proc_ticks "$SERVER_PID")
    line=$("$LOADGEN" fanout --port "$port" --deflate "$mode" -s "$SUBS" -t 1 -p 1 \
        --payload "$PAYLOAD" --text-payload --rate "$rate" -d "$DURATION" --strict \
        --json --quiet --label "$server-deflate-$mode" 2>>"$OUT/herald-load.log") || status=$?
    after=$(proc_ticks "$SERVER_PID")
    stop_pids 50 "$SERVER_PID" || true
    SERVER_PID=""
    if [[ "$line" != "{"* ]]; then
        say "run failed (exit $status); see $OUT/herald-load.log"
        return 1
    fi
    ((status == 0)) || say "checks failed in the $mode run (exit $status)"
    deliveries=$(grep -o '"deliveries":[0-9]*' <<<"$line" | cut -d: -f2)
    awk -v t=$((after - before)) -v hz="$TICKS_PER_SEC" -v n="${deliveries:-0}" -v l="$line" \
        'BEGIN { s = t / hz; printf "{\"server_cpu_s\":%.2f,", s;
                 if (n > 0) printf "\"server_cpu_ns_per_delivery\":%.1f,", s * 1e9 / n;
                 print substr(l, 2) }' >>"$RESULTS"
}

run off
run on
if ((PEER)); then
    if [[ ! -d "$ROOT/loadtest/ws-peer/node_modules" ]]; then
        (cd "$ROOT/loadtest/ws-peer" && npm ci --silent)
    fi
    run on ws-peer "${PEER_RATE:-5}"
fi

echo
machine_line
echo "herald $(herald_rev "$ROOT"); 1 topic × $SUBS subscribers, $PAYLOAD B text payload, $RATE msg/s, $DURATION"
python3 - "$RESULTS" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {r["label"].replace("herald-deflate-", ""): r for r in rows}
names = {"off": "herald, off", "on": "herald, on (compressed once)",
         "ws-peer-deflate-on": "ws peer, on (compressed per connection; PEER_RATE)"}
print(f"| server, permessage-deflate | deliveries | wire bytes / delivery | server CPU / delivery | checks |")
print(f"|---|---:|---:|---:|---|")
for mode in ("off", "on", "ws-peer-deflate-on"):
    r = by.get(mode)
    if r:
        print(f"| {names[mode]} | {r['deliveries']:,} | {r['wire_bytes_per_delivery']:,.0f} B"
              f" | {r.get('server_cpu_ns_per_delivery', 0) / 1000:,.2f} µs"
              f" | {'pass' if r.get('pass') else 'FAILED'} |")
if "on" in by and "off" in by:
    b = by["on"]["wire_bytes_per_delivery"] / by["off"]["wire_bytes_per_delivery"]
    c = by["on"].get("server_cpu_ns_per_delivery", 0) / max(by["off"].get("server_cpu_ns_per_delivery", 1), 1)
    print(f"\non/off: bytes {b:.1%}, server CPU {c:.2f}×")
if "on" in by and "ws-peer-deflate-on" in by:
    p = by["ws-peer-deflate-on"].get("server_cpu_ns_per_delivery", 0) / max(by["on"].get("server_cpu_ns_per_delivery", 1), 1)
    print(f"ws peer / herald, both compressing: server CPU {p:.2f}×")
PY
