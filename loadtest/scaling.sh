#!/usr/bin/env bash
# herald's fan-out as the audience grows: deliveries/s against subscribers and against topics,
# every delivery checked (lost / duplicated / reordered must be 0), rendered to SVG by
# `herald-load plot` (plotters, SVG backend).
#
#   loadtest/scaling.sh            # 8 points of ~4 s each (plus set-up), about 2 minutes
#   loadtest/scaling.sh --quick    # 2 s points, and only 10 / 1,000 subscribers, 1 / 100 topics
#
# Subscribers axis: 1 topic × S subscriber connections (S = 10, 100, 1,000, 10,000), 1 publisher,
# 128-byte payload, max rate (herald-load's flow-control window). Topics axis: T topics × 10
# subscriber connections each (T = 1, 10, 100, 1,000, so 10·T connections with one topic each),
# 10 publishers sharing the topics, 128 bytes, max rate. herald is pinned to CPU 0 and the load
# generator to CPU 1, as in compare.sh.
#
# Environment overrides: SERVER_CPU (0), LOAD_CPU (1), DURATION (4s; 2s with --quick),
# SUBSCRIBERS ("10 100 1000 10000"), TOPICS ("1 10 100 1000"), SUBS_PER_TOPIC (10),
# TOPIC_PUBS (10), PAYLOAD (128), HERALD (binary; default target/release/herald),
# OUT (default loadtest/results): scaling.jsonl, scaling.md, scaling-subscribers.svg,
# scaling-topics.svg (logs go to a directory under /tmp).
set -euo pipefail

usage() {
    sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
    echo
    echo "Flags: --quick  fewer, shorter points;  --no-build  use the existing release binaries."
}

QUICK=0
BUILD=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --no-build) BUILD=0 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "scaling.sh: unknown flag $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=loadtest/lib.sh
source "$ROOT/loadtest/lib.sh"
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PAYLOAD=${PAYLOAD:-128}
SUBS_PER_TOPIC=${SUBS_PER_TOPIC:-10}
TOPIC_PUBS=${TOPIC_PUBS:-10}
if ((QUICK)); then
    DURATION=${DURATION:-2s}
    SUBSCRIBERS=${SUBSCRIBERS:-10 1000}
    TOPICS=${TOPICS:-1 100}
else
    DURATION=${DURATION:-4s}
    SUBSCRIBERS=${SUBSCRIBERS:-10 100 1000 10000}
    TOPICS=${TOPICS:-1 10 100 1000}
fi
OUT=${OUT:-$ROOT/loadtest/results}
mkdir -p "$OUT"
# Logs stay out of the results directory, which is committed.
LOGS=$(mktemp -d "${TMPDIR:-/tmp}/herald-scaling.XXXXXX")
RESULTS="$OUT/scaling.jsonl"
: >"$RESULTS"

say() { printf '%s\n' "$*" >&2; }

if ((BUILD)); then build_release "$ROOT"; fi
HERALD=${HERALD:-$ROOT/target/release/herald}
LOADGEN="$ROOT/target/release/herald-load"

pin_cpus "$SERVER_CPU" "$LOAD_CPU"
# 10,000 subscribers need 10,000 descriptors on each side.
raise_fd_limit

SERVER_PID=""
stop_server() {
    if [[ -n "$SERVER_PID" ]]; then
        stop_pids 50 "$SERVER_PID" || true
        SERVER_PID=""
    fi
}
trap stop_server EXIT
trap 'stop_server; exit 130' INT TERM

# One fresh server per point, so a point never inherits another's topics or connections.
start_server() {
    local port=$1
    "${PIN_SERVER[@]}" env HOST=127.0.0.1 PORT="$port" RUST_LOG=warn SHUTDOWN_TIMEOUT_SECS=2 \
        "$HERALD" >>"$LOGS/herald.log" 2>&1 &
    SERVER_PID=$!
    wait_port "$port" "$SERVER_PID" && return 0
    say "herald did not start on port $port; see $LOGS/herald.log"
    return 1
}

TICKS_PER_SEC=$(getconf CLK_TCK 2>/dev/null || echo 100)
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# point AXIS LABEL ARGS… — one fanout run against a fresh herald; appends one JSON line with the
# axis, the server's CPU per delivery and the 1-minute load average at the end of the run.
FAILED=0
point() {
    local axis=$1 label=$2
    shift 2
    local port status=0 before after line
    port=$(free_port)
    start_server "$port" || { FAILED=1; stop_server; return 0; }
    say "  $label  (load average $(loadavg))"
    before=$(proc_ticks "$SERVER_PID")
    line=$("${PIN_LOAD[@]}" "$LOADGEN" fanout "$@" --port "$port" --payload "$PAYLOAD" \
        --duration "$DURATION" --json --quiet --strict --label "$label" \
        2>>"$LOGS/herald-load.log") || status=$?
    after=$(proc_ticks "$SERVER_PID")
    stop_server
    if [[ "$line" != "{"* ]]; then
        say "    run failed (exit $status); see $LOGS/herald-load.log"
        FAILED=1
        return 0
    fi
    ((status == 0)) || { say "    checks failed: $line"; FAILED=1; }
    local n
    n=$(grep -o '"deliveries":[0-9]*' <<<"$line" | cut -d: -f2 || true)
    awk -v t=$((after - before)) -v hz="$TICKS_PER_SEC" -v n="${n:-0}" -v l="$line" \
        -v axis="$axis" -v load="$(loadavg)" \
        'BEGIN { s = t / hz; printf "{\"axis\":\"%s\",\"loadavg\":\"%s\",\"server_cpu_s\":%.2f,", axis, load, s;
                 if (n > 0) printf "\"server_cpu_ns_per_item\":%.1f,", s * 1e9 / n;
                 print substr(l, 2) }' >>"$RESULTS"
}

START_LOAD=$(loadavg)
say "subscribers axis: 1 topic, 1 publisher, ${PAYLOAD} B, max rate, $DURATION per point"
for s in $SUBSCRIBERS; do
    point subscribers "subscribers-$s" --topics 1 --subscribers "$s" --publishers 1
done
say "topics axis: $SUBS_PER_TOPIC subscribers per topic, $TOPIC_PUBS publishers"
for t in $TOPICS; do
    point topics "topics-$t" --topics "$t" --subscribers $((t * SUBS_PER_TOPIC)) \
        --publishers "$TOPIC_PUBS"
done
END_LOAD=$(loadavg)

if ! "$LOADGEN" plot --input "$RESULTS" --out-dir "$OUT" >"$LOGS/table.md"; then FAILED=1; fi
{
    machine_line
    echo "herald: $(herald_rev "$ROOT") (release); server CPU $SERVER_CPU, load generator CPU $LOAD_CPU; $DURATION per point"
    echo "load average (1/5/15 min): $START_LOAD at the start, $END_LOAD at the end"
    cat "$LOGS/table.md"
} | tee "$OUT/scaling.md"
say ""
say "results: $OUT (scaling.jsonl, scaling.md, scaling-*.svg); logs: $LOGS"
exit "$FAILED"
