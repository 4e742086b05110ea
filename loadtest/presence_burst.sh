#!/usr/bin/env bash
# Presence under a join burst (issue 21): N connections (default 10,000) subscribe to ONE topic at
# once while a canary measures publish → delivery latency on another topic. Reports the canary's
# percentiles without and with the burst, and checks that the topic's presence counts exactly N
# identities while they are held (GET /topics/{name}/presence), and none after they left.
#
#   loadtest/presence_burst.sh                # N=10000 CONCURRENCY=2000 RATE=200
#   N=5000 loadtest/presence_burst.sh --no-build
#
# herald runs pinned to CPU 0 and both herald-load processes to CPU 1 (when there are 2 CPUs).
set -euo pipefail

BUILD=1
[[ "${1:-}" == --no-build ]] && BUILD=0
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=loadtest/lib.sh
source "$ROOT/loadtest/lib.sh"
say() { echo "presence_burst.sh: $*" >&2; }
N=${N:-10000}
CONCURRENCY=${CONCURRENCY:-2000}
RATE=${RATE:-200}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/herald-presence.XXXXXX")}
if ((BUILD)); then build_release "$ROOT"; fi
HERALD=${HERALD:-$ROOT/target/release/herald}
LOADGEN=$ROOT/target/release/herald-load
raise_fd_limit
pin_cpus 0 1

PORT=$(free_port)
"${PIN_SERVER[@]}" env HOST=127.0.0.1 PORT="$PORT" RUST_LOG=warn SHUTDOWN_TIMEOUT_SECS=2 \
    MAX_CONNECTIONS=$((N + 100)) "$HERALD" >"$OUT/herald.log" 2>&1 &
SERVER_PID=$!
trap 'stop_pids 50 "$SERVER_PID" || true' EXIT
wait_port "$PORT" "$SERVER_PID" || { say "herald did not start; see $OUT/herald.log"; exit 1; }

canary() {
    "${PIN_LOAD[@]}" "$LOADGEN" latency --port "$PORT" -s 1 -t 1 -p 1 --rate "$RATE" \
        --duration "$1" --warmup 1s --json --quiet --label "$2" 2>>"$OUT/herald-load.log"
}

say "canary alone (8 s, $RATE msg/s)"
canary 8s quiet >"$OUT/quiet.json"

say "canary with $N connections joining one topic ($CONCURRENCY at a time)"
canary 14s burst >"$OUT/burst.json" &
CANARY=$!
sleep 2
"${PIN_LOAD[@]}" "$LOADGEN" connections --port "$PORT" -n "$N" -t 1 --concurrency "$CONCURRENCY" \
    --duration 30s --hold 5s --json --quiet --label join-burst >"$OUT/burst-conns.json" \
    2>>"$OUT/herald-load.log" &
CONNS=$!

# While the connections are held: the topic with N subscribers, and its presence count.
topic="" count=""
for _ in $(seq 200); do
    topic=$(curl -fs "http://127.0.0.1:$PORT/topics" | python3 -c '
import json, sys
n = int(sys.argv[1])
topics = json.load(sys.stdin)
topics = topics.get("topics", topics) if isinstance(topics, dict) else topics
print(next((t["name"] for t in topics if t.get("subscribers") == n), ""))' "$N" || true)
    [[ -n "$topic" ]] && break
    sleep 0.1
done
if [[ -n "$topic" ]]; then
    count=$(curl -fs "http://127.0.0.1:$PORT/topics/$topic/presence" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["count"])' 2>/dev/null || echo none)
fi
wait "$CONNS" || true
wait "$CANARY" || true
after=""
if [[ -n "$topic" ]]; then
    for _ in $(seq 50); do
        after=$(curl -fs "http://127.0.0.1:$PORT/topics/$topic/presence" |
            python3 -c 'import json, sys; print(json.load(sys.stdin)["count"])' 2>/dev/null || echo gone)
        [[ "$after" == 0 || "$after" == gone ]] && break
        sleep 0.2
    done
fi

python3 - "$OUT" "$N" "${count:-none}" "${after:-none}" <<'PY'
import json, sys
out, n, count, after = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def load(name):
    try:
        return json.loads(open(f"{out}/{name}").read().strip().splitlines()[-1])
    except Exception:
        return {}
quiet, burst, conns = load("quiet.json"), load("burst.json"), load("burst-conns.json")
print(f"| canary latency µs | p50 | p99 | p99.9 | max |")
print(f"|---|---:|---:|---:|---:|")
for name, r in (("alone", quiet), (f"during {n:,} joins", burst)):
    l = r.get("latency_us", {})
    print(f"| {name} | " + " | ".join(f"{l.get(k, 0):,.0f}" for k in ("p50", "p99", "p99_9", "max")) + " |")
print()
print(f"connections: {conns.get('connections', '?')} of {n} in the burst, "
      f"{conns.get('connects_per_sec', '?')} connects/s; canary checks: "
      f"{'pass' if quiet.get('pass') and burst.get('pass') else 'FAILED'}")
print(f"presence count while held: {count} (want {n}); after they left: {after} (want 0 or gone)")
ok = count == str(n) and after in ("0", "gone") and quiet.get("pass") and burst.get("pass")
sys.exit(0 if ok else 1)
PY
