#!/usr/bin/env bash
# A burst into one topic (issue 23): MESSAGES messages of PAYLOAD bytes published by one publisher
# as fast as it can to ONE topic with SUBS subscribers reading at full speed, against a fresh
# herald with SUBSCRIBER_QUEUE_SIZE=QUEUE_SIZE. Reports deliveries against what was owed, the
# subscribers closed as slow consumers (as herald-load saw them, and as the server counts them in
# GET /stats), and the server's RSS: idle, once subscribed, at the end, and its peak (VmHWM).
#
#   loadtest/burst.sh                             # 1,000 subscribers, 6,000 × 128 B, queue 10,000
#   SUBS=50 MESSAGES=500 loadtest/burst.sh --no-build
#   BIN=/tmp/herald-before BUILD=0 loadtest/burst.sh   # measure another herald binary
#   SUBSCRIBER_QUEUE_BYTES=1048576 loadtest/burst.sh   # other herald settings pass through
#
# Every run starts its own herald: VmHWM is the peak over the process's whole life. herald runs
# pinned to CPU 0 and herald-load to CPU 1 (when there are 2 CPUs). The publisher keeps up to
# MAX_UNACKED publishes unacknowledged (default 1,000, at most half the queue: its acks share its
# own outbox) and flushes every BATCH (256) messages. The JSON line of herald-load goes to
# $OUT/burst.json. Exit status: herald-load's (0 pass, 1 a check failed, 2 it could not run), or
# 1 when the server died.
set -euo pipefail

BUILD=${BUILD:-1}
[[ "${1:-}" == --no-build ]] && BUILD=0
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=loadtest/lib.sh
source "$ROOT/loadtest/lib.sh"
say() { echo "burst.sh: $*" >&2; }

SUBS=${SUBS:-1000}
MESSAGES=${MESSAGES:-6000}
PAYLOAD=${PAYLOAD:-128}
QUEUE_SIZE=${QUEUE_SIZE:-10000}
half=$((QUEUE_SIZE / 2 > 0 ? QUEUE_SIZE / 2 : 1))
MAX_UNACKED=${MAX_UNACKED:-$((half < 1000 ? half : 1000))}
BATCH=${BATCH:-256}
DURATION=${DURATION:-30s}
DRAIN=${DRAIN:-10s}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/herald-burst.XXXXXX")}
mkdir -p "$OUT"

if ((BUILD)); then build_release "$ROOT"; fi
HERALD=${BIN:-$ROOT/target/release/herald}
LOADGEN=$ROOT/target/release/herald-load
for bin in "$HERALD" "$LOADGEN"; do
    [[ -x "$bin" ]] || { say "$bin is missing; build it (or drop --no-build / BUILD=0)"; exit 2; }
done
raise_fd_limit
pin_cpus 0 1

vm_rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

PORT=$(free_port)
"${PIN_SERVER[@]}" env HOST=127.0.0.1 PORT="$PORT" RUST_LOG=warn SHUTDOWN_TIMEOUT_SECS=2 \
    SUBSCRIBER_QUEUE_SIZE="$QUEUE_SIZE" MAX_CONNECTIONS=$((SUBS + 100)) "$HERALD" \
    >"$OUT/herald.log" 2>&1 &
SERVER_PID=$!
trap 'stop_pids 50 "$SERVER_PID" || true' EXIT
wait_port "$PORT" "$SERVER_PID" || { say "herald did not start; see $OUT/herald.log"; exit 2; }
IDLE_RSS=$(vm_rss "$SERVER_PID")

say "$SUBS subscribers, $MESSAGES × $PAYLOAD B into one topic, SUBSCRIBER_QUEUE_SIZE=$QUEUE_SIZE"
status=0
"${PIN_LOAD[@]}" "$LOADGEN" fanout --port "$PORT" -s "$SUBS" -t 1 -p 1 --payload "$PAYLOAD" \
    --messages "$MESSAGES" --window 0 --rate 0 --max-unacked "$MAX_UNACKED" --batch "$BATCH" \
    --duration "$DURATION" --drain "$DRAIN" --server-pid "$SERVER_PID" \
    --json --quiet --label burst >"$OUT/burst.json" 2>"$OUT/herald-load.log" || status=$?
line=$(tail -n 1 "$OUT/burst.json")
if [[ "$line" != "{"* ]]; then
    say "herald-load could not run (exit $status):"
    cat "$OUT/herald-load.log" >&2
    exit $((status ? status : 2))
fi
alive=1
kill -0 "$SERVER_PID" 2>/dev/null || alive=0
# The server's own count; `?` when it cannot say (it died, or /stats needs a key).
server_slow=$(curl -fs --max-time 5 "http://127.0.0.1:$PORT/stats" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["slow_consumer_disconnects"])' \
        2>/dev/null || echo '?')

echo
machine_line
settings=$(env | grep -E '^(SUBSCRIBER_|SLOW_CONSUMER_|WS_)' | grep -v '^SUBSCRIBER_QUEUE_SIZE=' |
    sort | tr '\n' ' ' || true)
echo "herald $HERALD ($(herald_rev "$ROOT") checkout); SUBSCRIBER_QUEUE_SIZE=$QUEUE_SIZE ${settings}"
echo "1 topic × $SUBS subscribers, $MESSAGES × $PAYLOAD B from 1 publisher at full speed" \
    "(≤ $MAX_UNACKED unacked, batches of $BATCH)"
python3 - "$line" "$IDLE_RSS" "$server_slow" "$alive" <<'PY'
import json, sys
r, idle, server_slow, alive = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
mib = lambda kib: f"{kib / 1024:,.1f} MiB" if isinstance(kib, int) else "?"
got, owed = r.get("deliveries", 0), r.get("expected_deliveries", 0)
caught = r.get("caught_up_secs")
rows = [
    ("delivered / owed", f"{got:,} / {owed:,} ({got / max(owed, 1):.1%})"),
    ("published", f"{r.get('published', 0):,} of {r.get('messages', 0):,} in {r.get('publish_secs', '?')} s"
     + (f"; subscribers still connected caught up in {caught} s" if caught is not None else "; drain ended first")),
    ("slow-consumer disconnects (herald-load / server /stats)",
     f"{r.get('policy_disconnects', '?')} / {server_slow}"),
    ("missed after those closes", f"{r.get('missed_after_policy_close', 0):,}"),
    ("other disconnects", f"{r.get('other_disconnects', 0)}"),
    ("lost / duplicated / reordered", f"{r.get('lost')} / {r.get('duplicated')} / {r.get('reordered')}"),
    ("server RSS idle → subscribed → end", f"{mib(idle)} → {mib(r.get('server_rss_before_kib'))} → "
     f"{mib(r.get('server_rss_kib'))}"),
    ("server peak RSS (VmHWM)", mib(r.get("server_peak_rss_kib"))),
    ("checks", "pass" if r.get("pass") else "FAILED: " + "; ".join(r.get("failures", []))),
]
if not alive:
    rows.append(("server", "DIED during the run"))
print("| burst | |")
print("|---|---|")
for name, value in rows:
    print(f"| {name} | {value} |")
PY
((alive)) || { say "herald died; see $OUT/herald.log"; exit 1; }
say "results in $OUT"
exit "$status"
