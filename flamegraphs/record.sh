#!/usr/bin/env bash
# Record a CPU flamegraph of herald under the fan-out scenario.
#
#   flamegraphs/record.sh LABEL            # e.g. flamegraphs/record.sh baseline
#
# herald runs pinned to CPU 0, `herald-load fanout` (1 topic × 1,000 subscribers, 1 publisher,
# 128-byte payload, max rate) pinned to CPU 1. Once the subscribers are connected and publishing
# has run for a warm-up, `perf record -e cpu-clock -F 999 -g --call-graph dwarf` samples the herald
# process only for RECORD seconds. The samples are folded with inferno-collapse-perf and rendered
# with inferno-flamegraph into flamegraphs/fanout-LABEL.svg; the folded stacks are kept beside it
# (fanout-LABEL.folded) so the top frames can be read without perf.
#
# Only the software clock (`-e cpu-clock`) works on these machines: there is no PMU.
#
# Environment overrides: SERVER_CPU (0), LOAD_CPU (1), SUBS (1000), TOPICS (1), PUBS (1),
# PAYLOAD (128), RATE (0 = max), RECORD (10, seconds sampled), WARMUP (3, seconds of publishing
# before sampling starts), FREQ (999), CALLGRAPH (dwarf; or fp, or lbr where it exists),
# PORT (a free port below the ephemeral range), OUT (directory for the SVG; default this script's
# directory), HERALD / LOADGEN (binaries; default $CARGO_TARGET_DIR or ./target, release),
# COMMIT (what the title says HERALD was built from; default this checkout's HEAD).
# Flags: --no-build  use the existing release binaries.
set -euo pipefail

usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; }

BUILD=1
LABEL=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --no-build) BUILD=0 ;;
        -h | --help) usage; exit 0 ;;
        -*) echo "record.sh: unknown flag $1 (try --help)" >&2; exit 2 ;;
        *) [[ -z "$LABEL" ]] || { echo "record.sh: one label only" >&2; exit 2; }; LABEL=$1 ;;
    esac
    shift
done
[[ -n "$LABEL" ]] || { usage >&2; exit 2; }
[[ "$LABEL" =~ ^[A-Za-z0-9._-]+$ ]] || { echo "record.sh: label must be [A-Za-z0-9._-]+" >&2; exit 2; }

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=loadtest/lib.sh
source "$ROOT/loadtest/lib.sh"
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
SUBS=${SUBS:-1000}
TOPICS=${TOPICS:-1}
PUBS=${PUBS:-1}
PAYLOAD=${PAYLOAD:-128}
RATE=${RATE:-0}
RECORD=${RECORD:-10}
WARMUP=${WARMUP:-3}
FREQ=${FREQ:-999}
CALLGRAPH=${CALLGRAPH:-dwarf}
OUT=${OUT:-$HERE}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
HERALD=${HERALD:-$TARGET_DIR/release/herald}
LOADGEN=${LOADGEN:-$TARGET_DIR/release/herald-load}
export PATH="$PATH:$HOME/.cargo/bin:/usr/sbin:/sbin"

say() { printf 'record.sh: %s\n' "$*" >&2; }

# --- tools -----------------------------------------------------------------------------------
sudo=""
[[ $(id -u) -ne 0 ]] && sudo=sudo
if ! command -v perf >/dev/null || ! perf --version >/dev/null 2>&1; then
    say "installing perf with apt-get"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq linux-perf >/dev/null 2>&1 ||
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "linux-tools-$(uname -r)" >/dev/null
fi
if ! command -v inferno-collapse-perf >/dev/null || ! command -v inferno-flamegraph >/dev/null; then
    say "installing inferno from crates.io"
    cargo install --quiet --locked inferno
fi
command -v taskset >/dev/null || { say "taskset (util-linux) is required"; exit 2; }

if ((BUILD)); then build_release "$ROOT"; fi
[[ -x "$HERALD" && -x "$LOADGEN" ]] || { say "missing $HERALD or $LOADGEN (build first)"; exit 2; }

# --- run -------------------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/herald-flame.XXXXXX")
raise_fd_limit

SERVER_PID=""
LOAD_PID=""
cleanup() {
    if [[ -n "$LOAD_PID" ]]; then kill "$LOAD_PID" 2>/dev/null || true; fi
    if [[ -n "$SERVER_PID" ]]; then stop_pids 50 "$SERVER_PID" || true; fi
    rm -f "$WORK/perf.data" "$WORK/perf.data.old"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ -n "${PORT:-}" ]] || PORT=$(free_port)

say "herald on 127.0.0.1:$PORT, CPU $SERVER_CPU"
taskset -c "$SERVER_CPU" env HOST=127.0.0.1 PORT="$PORT" RUST_LOG=warn SHUTDOWN_TIMEOUT_SECS=2 \
    "$HERALD" >"$WORK/herald.log" 2>&1 &
SERVER_PID=$!
wait_port "$PORT" "$SERVER_PID" || { say "herald did not start; see $WORK/herald.log"; exit 1; }

DURATION=$((WARMUP + RECORD + 2))
say "herald-load fanout: $TOPICS topic(s) × $SUBS subscribers, $PUBS publisher(s), ${PAYLOAD} B, rate ${RATE} (0 = max), ${DURATION}s, CPU $LOAD_CPU"
taskset -c "$LOAD_CPU" "$LOADGEN" fanout --port "$PORT" --subscribers "$SUBS" --topics "$TOPICS" \
    --publishers "$PUBS" --payload "$PAYLOAD" --rate "$RATE" --duration "${DURATION}s" --quiet \
    >"$WORK/herald-load.txt" 2>"$WORK/herald-load.log" &
LOAD_PID=$!

# Wait until every subscriber is connected (herald's /health), then for the warm-up.
for _ in $(seq 600); do
    n=$(curl -s --max-time 1 "http://127.0.0.1:$PORT/health" | grep -o '"subscribers":[0-9]*' | cut -d: -f2 || true)
    [[ "${n:-0}" -ge "$SUBS" ]] && break
    kill -0 "$LOAD_PID" 2>/dev/null || { say "herald-load exited early; see $WORK/herald-load.log"; exit 1; }
    sleep 0.1
done
sleep "$WARMUP"

say "perf record -e cpu-clock -F $FREQ -g --call-graph $CALLGRAPH -p $SERVER_PID for ${RECORD}s"
cg=(--call-graph "$CALLGRAPH")
[[ "$CALLGRAPH" == dwarf ]] && cg=(--call-graph dwarf,16384)
# perf itself runs on the load generator's CPU so herald's CPU sees only herald (and the
# sampling interrupts, which are charged to it either way).
taskset -c "$LOAD_CPU" perf record -q -e cpu-clock -F "$FREQ" -g "${cg[@]}" -p "$SERVER_PID" \
    -o "$WORK/perf.data" -- sleep "$RECORD" 2>"$WORK/perf-record.log" || {
    say "perf record failed:"; cat "$WORK/perf-record.log" >&2; exit 1; }

status=0
wait "$LOAD_PID" || status=$?
LOAD_PID=""
cat "$WORK/herald-load.txt" >&2
((status == 0)) || say "warning: herald-load exited with $status (checks failed or run incomplete)"

say "folding and rendering"
mkdir -p "$OUT"
FOLDED="$OUT/fanout-$LABEL.folded"
SVG="$OUT/fanout-$LABEL.svg"
# --no-inline: resolving inlined frames with addr2line takes minutes; function symbols are enough.
perf script -i "$WORK/perf.data" --no-inline 2>/dev/null | inferno-collapse-perf --all >"$FOLDED"
commit=${COMMIT:-$(herald_rev "$ROOT")}
# inferno-collapse-perf weights each stack by the sample period: for cpu-clock, nanoseconds of CPU.
cpu_ms=$(awk '{ n += $NF } END { printf "%d", n / 1e6 }' "$FOLDED")
rate_text="max rate"
[[ "$RATE" != 0 ]] && rate_text="$RATE msg/s"
inferno-flamegraph --title "herald fan-out: $TOPICS topic x $SUBS subscribers, $PUBS publisher, ${PAYLOAD} B, $rate_text ($LABEL, $commit)" \
    --subtitle "perf -e cpu-clock -F $FREQ --call-graph $CALLGRAPH, ${RECORD}s, herald on CPU $SERVER_CPU, herald-load on CPU $LOAD_CPU; $cpu_ms ms of herald CPU in ${RECORD} s" \
    --countname ns <"$FOLDED" >"$SVG"

say "top frames by self time:"
awk '{ n = $NF; $NF = ""; k = split($0, f, ";"); leaf = f[k]; sub(/ +$/, "", leaf); self[leaf] += n; total += n }
     END { for (l in self) printf "%6.2f%%  %s\n", 100 * self[l] / total, l }' "$FOLDED" |
    sort -rn | head -15 >&2 || true # head closing the pipe early is not a failure (pipefail)
say "wrote $SVG and $FOLDED ($cpu_ms ms of herald CPU time in ${RECORD} s sampled)"
