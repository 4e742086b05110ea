#!/usr/bin/env bash
# Soak: herald under steady publish + fan-out + connection churn + REST publishes for a set time,
# every delivery checked, the server's RSS and open file descriptors sampled (issue 7).
#
#   loadtest/soak.sh                        # 60 s
#   SOAK_DURATION=30m loadtest/soak.sh      # the long run RELIABILITY.md records
#   loadtest/soak.sh --json                 # extra arguments go to `herald-load soak`
#
# Builds herald and herald-load (release), starts herald on a free loopback port, runs
# `herald-load soak --server-pid …` against it, prints the result, and stops the server (also on
# exit or Ctrl-C). The load is modest so a shared 2-core CI machine keeps up: 200 subscribers
# (20 of them dropping their connection without a close frame every ~5 s and resuming with
# since_seq + epoch) over 10 topics, 5 WebSocket publishers at 300 msg/s in all, REST publishes at
# 20/s, 10 connections a second opened and dropped without a close frame.
#
# Exit status: herald-load's (0 pass; 1 a check failed: lost / duplicated / reordered, a resume
# not recovered, RSS growth after warm-up over 5 %, fd growth, the server gone; 2 the run could
# not be done), or 1 when herald does not stop cleanly on SIGTERM.
#
# herald runs with MIMALLOC_ALLOW_THP=0 (a setting of its allocator, mimalloc, not of herald):
# by default mimalloc asks for transparent huge pages, so the RSS of a ~20 MB server moves in
# 2 MiB steps (10 % each) that say nothing about a leak; with 4 KiB pages the 5 % bound means
# something. SOAK_THP=1 keeps huge pages.
#
# A load generator or server that does not get the CPU for a second (a busy shared machine)
# builds a backlog, and the memory it took stays in herald's RSS as a high-water mark; herald-load
# counts such stalls and names them next to an RSS failure. SOAK_NICE=-10 runs both at that
# priority (negative values need root) so other work on the machine does not starve them.
#
# SOAK_STALL=AT:FOR reproduces such a stall on purpose: the load generator is stopped (SIGSTOP)
# AT seconds into the run for FOR seconds, then continued (e.g. SOAK_STALL=35:1).
#
# Environment: SOAK_DURATION (60s), SOAK_NO_BUILD=1 (use the existing release binaries),
# SOAK_THP=1 (see above), SOAK_NICE (unset: normal priority), SOAK_STALL (unset: none),
# SOAK_OUT (directory for herald.log and the result; default a new one under /tmp).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=loadtest/lib.sh
source "$ROOT/loadtest/lib.sh"
DURATION=${SOAK_DURATION:-60s}
OUT=${SOAK_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/herald-soak.XXXXXX")}
mkdir -p "$OUT"
HERALD="$ROOT/target/release/herald"
LOADGEN="$ROOT/target/release/herald-load"

say() { printf 'soak.sh: %s\n' "$*" >&2; }

if [[ "${SOAK_NO_BUILD:-0}" != 1 ]]; then build_release "$ROOT"; fi
raise_fd_limit

SERVER_PID=""
SERVER_STATUS=""
stop_server() {
    if [[ -n "$SERVER_PID" ]]; then
        # herald drains for up to SHUTDOWN_TIMEOUT_SECS (2 s here); 10 s leaves room for a slow
        # machine, and its exit status after SIGTERM is part of the verdict.
        SERVER_STATUS=0
        stop_pids --note "herald did not stop within 10 s of SIGTERM; killing it" 100 "$SERVER_PID" ||
            SERVER_STATUS=$?
        SERVER_PID=""
    fi
}
trap stop_server EXIT
LOAD_PID=""
# herald-load runs in the background (so SOAK_STALL can signal it), where it ignores SIGINT.
trap '[[ -n "$LOAD_PID" ]] && kill "$LOAD_PID" 2>/dev/null; stop_server; exit 130' INT TERM

THP_ENV=(MIMALLOC_ALLOW_THP=0)
[[ "${SOAK_THP:-0}" == 1 ]] && THP_ENV=()
NICE=()
[[ -n "${SOAK_NICE:-}" ]] && NICE=(nice -n "$SOAK_NICE")

start_server() {
    local port=$1
    "${NICE[@]}" env HOST=127.0.0.1 PORT="$port" RUST_LOG=warn SHUTDOWN_TIMEOUT_SECS=2 \
        "${THP_ENV[@]}" "$HERALD" >"$OUT/herald.log" 2>&1 &
    SERVER_PID=$!
    wait_port "$port" "$SERVER_PID" && return 0
    say "herald did not start on port $port; see $OUT/herald.log"
    return 1
}

started=0
for _ in 1 2 3; do
    PORT=$(free_port)
    if start_server "$PORT"; then started=1; break; fi
    stop_server
done
((started)) || { say "giving up: herald would not start"; exit 2; }

say "herald $(herald_rev "$ROOT") pid $SERVER_PID on 127.0.0.1:$PORT ${THP_ENV[*]} ${NICE[*]}; soak for $DURATION ($(nproc) CPUs)"
say "started at $(date -u +%Y-%m-%dT%H:%M:%SZ); results in $OUT"
status=0
"${NICE[@]}" "$LOADGEN" soak --port "$PORT" --server-pid "$SERVER_PID" --duration "$DURATION" "$@" \
    > >(tee "$OUT/result.txt") &
LOAD_PID=$!
if [[ -n "${SOAK_STALL:-}" ]]; then
    stall_at=${SOAK_STALL%%:*}
    stall_for=${SOAK_STALL#*:}
    (
        sleep "$stall_at"
        kill -STOP "$LOAD_PID" 2>/dev/null || exit 0
        say "stalled herald-load (SIGSTOP) at ${stall_at}s for ${stall_for}s"
        sleep "$stall_for"
        kill -CONT "$LOAD_PID" 2>/dev/null || true
    ) &
fi
wait "$LOAD_PID" || status=$?
say "finished at $(date -u +%Y-%m-%dT%H:%M:%SZ)"

stop_server
if [[ "$SERVER_STATUS" != 0 ]]; then
    say "herald exited with status $SERVER_STATUS after SIGTERM (expected 0); last log lines:"
    tail -20 "$OUT/herald.log" >&2 || true
    ((status != 0)) || status=1
elif ((status != 0)); then
    say "soak failed (exit $status); last herald log lines:"
    tail -20 "$OUT/herald.log" >&2 || true
fi
exit "$status"
