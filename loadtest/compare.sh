#!/usr/bin/env bash
# herald next to nats-server and redis-server: the same herald-load scenarios against each,
# the server pinned to one CPU and the load generator to another, one side-by-side table.
#
#   loadtest/compare.sh            # ~10 s per run, a few minutes in all
#   loadtest/compare.sh --quick    # ~3 s per run, about a minute
#
# Scenarios (issue 5): fan-out 1 topic × 1,000 subscribers, 1 publisher, 128-byte payload, max
# rate; many topics 1,000 topics × 10 subscribers each (1,000 connections with 10 topics each),
# 10 publishers; latency at 50 % of herald's max fan-out publish rate, same topology as fan-out;
# REST `POST /publish` over REST_CONNS keep-alive connections against herald and against a bare
# hyper 1 "hello" server (`herald-load hello-server`, target `hello`, REST only).
# Every run checks each delivery (lost / duplicated / reordered) and says so in the table.
#
# Environment overrides: SERVER_CPU (0), LOAD_CPU (1), DURATION, TARGETS ("herald nats redis hello"),
# FANOUT_SUBS (1000), MANY_TOPICS (1000), MANY_CONNS (1000), MANY_PER_CONN (10),
# MANY_PUBS (10), PAYLOAD (128), LATENCY_PCT (50: latency rate as % of herald's max fan-out
# publish rate), REST_CONNS (16), HERALD (binary; default target/release/herald), OUT (results
# directory; default a new directory under /tmp), VIA_PATTERN (0; 1 adds `fanout-…-via-gt` for
# herald and nats: the fan-out run with every subscriber on the pattern `<run>.>` instead of the
# topic's name).
# Before/after a change, in the same run and pins: HERALD_BASE=path/to/old/herald adds the target
# `base` (that binary, run exactly like herald) and a herald/base ratio column, e.g.
#   HERALD_BASE=/tmp/herald-before TARGETS="herald base nats" loadtest/compare.sh
set -euo pipefail

usage() {
    sed -n '2,/^set -euo/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'
    echo
    echo "Flags: --quick  shorter runs;  --no-build  use the existing release binaries;"
    echo "       --no-install  fail instead of apt-get installing missing peers."
}

QUICK=0
BUILD=1
INSTALL=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --no-build) BUILD=0 ;;
        --no-install) INSTALL=0 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "compare.sh: unknown flag $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=loadtest/lib.sh
source "$ROOT/loadtest/lib.sh"
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
TARGETS=${TARGETS:-herald nats redis hello}
FANOUT_SUBS=${FANOUT_SUBS:-1000}
MANY_TOPICS=${MANY_TOPICS:-1000}
MANY_CONNS=${MANY_CONNS:-1000}
MANY_PER_CONN=${MANY_PER_CONN:-10}
MANY_PUBS=${MANY_PUBS:-10}
PAYLOAD=${PAYLOAD:-128}
LATENCY_PCT=${LATENCY_PCT:-50}
REST_CONNS=${REST_CONNS:-16}
if ((QUICK)); then DURATION=${DURATION:-3s}; else DURATION=${DURATION:-10s}; fi
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/herald-compare.XXXXXX")}
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
: >"$RESULTS"
export PATH="$PATH:/usr/sbin:/sbin"

say() { printf '%s\n' "$*" >&2; }

# --- peers -----------------------------------------------------------------------------------
missing=()
for t in $TARGETS; do
    case "$t" in
        nats) command -v nats-server >/dev/null || missing+=(nats-server) ;;
        redis) command -v redis-server >/dev/null || missing+=(redis-server) ;;
    esac
done
if ((${#missing[@]})); then
    if ((!INSTALL)); then
        say "missing: ${missing[*]} (run without --no-install to apt-get them)"
        exit 2
    fi
    sudo=""
    [[ $(id -u) -ne 0 ]] && sudo=sudo
    say "installing ${missing[*]} with apt-get"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- binaries --------------------------------------------------------------------------------
if ((BUILD)); then build_release "$ROOT"; fi
HERALD=${HERALD:-$ROOT/target/release/herald}
LOADGEN="$ROOT/target/release/herald-load"

# --- pinning ---------------------------------------------------------------------------------
pin_cpus "$SERVER_CPU" "$LOAD_CPU"
raise_fd_limit

# --- servers ---------------------------------------------------------------------------------
SERVER_PID=""
stop_server() {
    if [[ -n "$SERVER_PID" ]]; then
        stop_pids 50 "$SERVER_PID" || true
        SERVER_PID=""
    fi
}
trap stop_server EXIT
trap 'stop_server; exit 130' INT TERM

start_server() {
    local target=$1 port=$2
    case "$target" in
        herald | base)
            local bin=$HERALD
            [[ "$target" == base ]] && bin=${HERALD_BASE:?HERALD_BASE must name the herald binary to compare with}
            "${PIN_SERVER[@]}" env HOST=127.0.0.1 PORT="$port" RUST_LOG=warn SHUTDOWN_TIMEOUT_SECS=2 \
                "$bin" >"$OUT/$target.log" 2>&1 &
            ;;
        nats)
            "${PIN_SERVER[@]}" nats-server -a 127.0.0.1 -p "$port" >"$OUT/nats.log" 2>&1 &
            ;;
        redis)
            "${PIN_SERVER[@]}" redis-server --bind 127.0.0.1 --port "$port" --save '' \
                --appendonly no --maxclients 20000 >"$OUT/redis.log" 2>&1 &
            ;;
        hello)
            "${PIN_SERVER[@]}" "$LOADGEN" hello-server --port "$port" >"$OUT/hello.log" 2>&1 &
            ;;
        *) say "unknown target $target"; return 1 ;;
    esac
    SERVER_PID=$!
    wait_port "$port" "$SERVER_PID" && return 0
    say "$target did not start on port $port; see $OUT/$target.log"
    return 1
}

TICKS_PER_SEC=$(getconf CLK_TCK 2>/dev/null || echo 100)

# run LABEL TARGET PORT SCENARIO ARGS… — appends one JSON line to results.jsonl, with the server's
# CPU time during the run and its CPU per delivery (per request for rest) added: on a shared
# machine that is steadier than a rate, which also depends on how much CPU the server was given.
run() {
    local label=$1 target=$2 port=$3
    shift 3
    say "  $label"
    local status=0
    # rest has no policy drops to be strict about: any failed request fails it already.
    local strict=(--strict)
    [[ "$1" == rest ]] && strict=()
    local before after line items proto=$target
    # `base` is herald too: the load generator speaks herald's protocol to it.
    [[ "$target" == base ]] && proto=herald
    before=$(proc_ticks "$SERVER_PID")
    line=$("${PIN_LOAD[@]}" "$LOADGEN" "$@" --target "$proto" --port "$port" --json --quiet \
        "${strict[@]}" --label "$label" 2>>"$OUT/herald-load.log") || status=$?
    after=$(proc_ticks "$SERVER_PID")
    [[ "$target" == base ]] && line=${line/\"target\":\"herald\"/\"target\":\"base\"}
    if [[ "$line" == "{"* ]]; then
        items=$(grep -o '"\(deliveries\|requests\)":[0-9]*' <<<"$line" | head -1 | cut -d: -f2 || true)
        line=$(awk -v t=$((after - before)) -v hz="$TICKS_PER_SEC" -v n="${items:-0}" -v l="$line" \
            'BEGIN { s = t / hz; printf "{\"server_cpu_s\":%.2f,", s;
                     if (n > 0) printf "\"server_cpu_ns_per_item\":%.1f,", s * 1e9 / n;
                     print substr(l, 2) }')
        printf '%s\n' "$line" >>"$RESULTS"
    fi
    case $status in
        0) ;;
        1) say "    checks failed (see the table)" ;;
        *) say "    run failed (exit $status); see $OUT/herald-load.log" ;;
    esac
}

versions() {
    machine_line
    echo "pinning: server CPU $SERVER_CPU, load generator CPU $LOAD_CPU; runs of $DURATION"
    for t in $TARGETS; do
        case "$t" in
            herald) echo "herald: $(herald_rev "$ROOT") (release)" ;;
            base) echo "base: $HERALD_BASE" ;;
            nats) echo "nats-server: $(nats-server --version 2>&1 | head -1)" ;;
            redis) echo "redis-server: $(redis-server --version | head -1)" ;;
            hello) echo "hello: herald-load hello-server (bare hyper $(grep -A1 '^name = "hyper"$' "$ROOT/Cargo.lock" | grep -o '[0-9][0-9.]*' | head -1), HTTP/1.1 keep-alive)" ;;
        esac
    done
}

RATE=""
for target in $TARGETS; do
    started=0
    for _ in 1 2 3; do
        port=$(free_port)
        say "$target on 127.0.0.1:$port"
        if start_server "$target" "$port"; then started=1; break; fi
        stop_server
    done
    ((started)) || { say "giving up on $target"; continue; }
    if [[ "$target" == hello ]]; then
        # The bare hyper peer serves REST only.
        run rest-${REST_CONNS}conns "$target" "$port" rest --connections "$REST_CONNS" \
            --payload "$PAYLOAD" --duration "$DURATION"
        stop_server
        continue
    fi
    run fanout-1x${FANOUT_SUBS} "$target" "$port" fanout \
        --topics 1 --subscribers "$FANOUT_SUBS" --publishers 1 --payload "$PAYLOAD" \
        --duration "$DURATION"
    if ((${VIA_PATTERN:-0})) && [[ "$target" == herald || "$target" == nats ]]; then
        run fanout-1x${FANOUT_SUBS}-via-gt "$target" "$port" fanout --via-pattern \
            --topics 1 --subscribers "$FANOUT_SUBS" --publishers 1 --payload "$PAYLOAD" \
            --duration "$DURATION"
    fi
    if [[ -z "$RATE" ]]; then
        # LATENCY_PCT % of the first target's (herald's) max fan-out publish rate, the same for
        # every target.
        max=$(grep '"label":"fanout-1x' "$RESULTS" | head -1 |
            grep -o '"published_per_sec":[0-9.]*' | cut -d: -f2 || true)
        RATE=$(awk -v m="${max:-0}" -v p="$LATENCY_PCT" \
            'BEGIN { r = int(m * p / 100); print (r < 10 ? 10 : r) }')
        say "  latency runs offer $RATE msg/s ($LATENCY_PCT % of $target's max fan-out rate)"
    fi
    run many-topics-${MANY_TOPICS}x$((MANY_CONNS * MANY_PER_CONN / MANY_TOPICS)) "$target" "$port" fanout \
        --topics "$MANY_TOPICS" --subscribers "$MANY_CONNS" \
        --topics-per-subscriber "$MANY_PER_CONN" --publishers "$MANY_PUBS" \
        --payload "$PAYLOAD" --duration "$DURATION"
    run latency-${RATE}/s "$target" "$port" latency \
        --topics 1 --subscribers "$FANOUT_SUBS" --publishers 1 --payload "$PAYLOAD" \
        --rate "$RATE" --duration "$DURATION"
    if [[ "$target" == herald || "$target" == base ]]; then
        run rest-${REST_CONNS}conns "$target" "$port" rest --connections "$REST_CONNS" \
            --payload "$PAYLOAD" --duration "$DURATION"
    fi
    stop_server
done

{
    echo
    versions
    echo
    "$LOADGEN" report "$RESULTS" || true
} | tee "$OUT/table.md"
say ""
say "results: $OUT (results.jsonl, table.md, server logs)"
