#!/usr/bin/env bash
# herald in cluster mode (NATS JetStream backplane, nginx in front) next to one in-memory node:
# the same herald-load fan-out and latency runs against each configuration, one table with the
# ratios to the single in-memory node.
#
#   loadtest/cluster.sh            # 5 s runs, about 2 minutes in all
#   loadtest/cluster.sh --quick    # 2 s runs, about a minute
#
# Configurations, each started fresh on free loopback ports in a temporary directory:
#   memory        one herald node, no NATS_URL, clients connect to it directly (the baseline)
#   memory+nginx  the same node behind nginx: the proxy hop alone
#   nats-1        nats-server -js, one node with NATS_URL, behind nginx
#   nats-3        nats-server -js, three nodes with NATS_URL, behind nginx (round robin)
# A suffix picks the proxy in front instead: `+nginx` (HTTP/WebSocket proxy, L7, the default for
# nats-N), `+l4` (nginx `stream`, plain TCP), `+haproxy` (HAProxy `mode tcp`), e.g. memory+l4,
# nats-1+l4, nats-3+haproxy. The L4 ones need nginx's stream module (Debian:
# libnginx-mod-stream) or haproxy; they never parse HTTP or WebSocket frames, only move bytes.
# Runs (all --strict: any lost, duplicated or reordered message, publish error or disconnect fails):
#   fanout   1 topic × SUBS subscribers, PUBS publishers, PAYLOAD bytes, max rate under the
#            default flow-control window, DURATION of publishing
#   latency  the same topology at a fixed LATENCY_RATE msg/s (publish→delivery percentiles)
# Subscribers and publishers both connect through nginx where there is one, so with three nodes
# they are spread round robin and most deliveries cross the backplane.
#
# Environment overrides: CONFIGS ("memory memory+nginx nats-1 nats-3"), SUBS (300), PUBS (1),
# PAYLOAD (128), PIN (0; 1 runs the servers on CPU 0 and herald-load on CPU 1), PERF (0; 1 records
# a flamegraph of every server process during each fan-out run, OUT/CONFIG.svg),
# WINDOW / MAX_UNACKED (herald-load's --window / --max-unacked for the fan-out run; its defaults
# when unset), DURATION (5s; 2s with --quick), WARMUP (1s; 500ms with --quick: latency
# samples not recorded), LATENCY_RATE (200), HERALD (binary; default
# target/release/herald), OUT (results directory; default a new directory under /tmp).
set -euo pipefail

usage() {
    sed -n '2,/^set -euo/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'
    echo
    echo "Flags: --quick  shorter runs;  --no-build  use the existing release binaries."
}

QUICK=0
BUILD=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --no-build) BUILD=0 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "cluster.sh: unknown flag $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=loadtest/lib.sh
source "$ROOT/loadtest/lib.sh"
CONFIGS=${CONFIGS:-memory memory+nginx nats-1 nats-3}
SUBS=${SUBS:-300}
PUBS=${PUBS:-1}
PAYLOAD=${PAYLOAD:-128}
LATENCY_RATE=${LATENCY_RATE:-200}
if ((QUICK)); then DURATION=${DURATION:-2s}; WARMUP=${WARMUP:-500ms}; else DURATION=${DURATION:-5s}; WARMUP=${WARMUP:-1s}; fi
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/herald-cluster-bench.XXXXXX")}
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
: >"$RESULTS"
export PATH="$PATH:/usr/sbin:/sbin"

say() { printf '%s\n' "$*" >&2; }

PIN=${PIN:-0}
PERF=${PERF:-0}
if ((PERF)); then
    command -v perf >/dev/null || { say "PERF=1 needs perf (Debian: apt-get install linux-perf)"; exit 2; }
    export PATH="$PATH:$HOME/.cargo/bin"
    if ! command -v inferno-collapse-perf >/dev/null || ! command -v inferno-flamegraph >/dev/null; then
        say "installing inferno from crates.io"
        cargo install --quiet --locked inferno
    fi
fi
for tool in nats-server nginx python3; do
    command -v "$tool" >/dev/null || {
        say "$tool not found (Debian: apt-get install nats-server nginx python3)"
        exit 2
    }
done

if ((BUILD)); then build_release "$ROOT"; fi
HERALD=${HERALD:-$ROOT/target/release/herald}
LOADGEN="$ROOT/target/release/herald-load"
raise_fd_limit
PIN_SERVER=()
PIN_LOAD=()
if ((PIN)); then pin_cpus 0 1; fi

# --- processes -------------------------------------------------------------------------------
PIDS=()
stop_all() {
    stop_pids 30 "${PIDS[@]}" || true
    PIDS=()
}
trap stop_all EXIT
trap 'stop_all; exit 130' INT TERM

# free_port skips ports that accept connections, and each one here listens before the next is
# picked: no port is handed out twice.
wait_listen() {
    local port=$1 what=$2 pid=$3
    wait_port "$port" "$pid" 200 && return 0
    say "$what did not listen on $port; see $DIR"
    return 1
}

# A node is ready when /readyz answers 200 (in cluster mode: connected to NATS and caught up).
wait_ready() {
    local port=$1
    for _ in $(seq 200); do
        curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    say "herald on $port never became ready; see $DIR"
    return 1
}

start_nats() {
    NATS_PORT=$(free_port)
    "${PIN_SERVER[@]}" nats-server -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$DIR/js" >"$DIR/nats.log" 2>&1 &
    PIDS+=($!)
    wait_listen "$NATS_PORT" nats-server $!
}

# start_node INDEX [NATS_URL]: one herald node on a free port, appended to NODE_PORTS.
start_node() {
    local i=$1 nats=${2:-} port
    port=$(free_port)
    "${PIN_SERVER[@]}" env HOST=127.0.0.1 PORT="$port" RUST_LOG=warn SHUTDOWN_TIMEOUT_SECS=2 \
        ${nats:+NATS_URL="$nats"} NODE_ID="node$i" DRAIN_DURATION_SECS=0 \
        "$HERALD" >"$DIR/node$i.log" 2>&1 &
    PIDS+=($!)
    NODE_PORTS+=("$port")
    wait_listen "$port" "herald node$i" $!
}

# The upstream lines for NODE_PORTS, the same for nginx's http and stream modules.
nginx_servers() {
    local p
    for p in "${NODE_PORTS[@]}"; do
        printf '    server 127.0.0.1:%s max_fails=1 fail_timeout=3s;\n' "$p"
    done
}

# nginx in front of NODE_PORTS with the settings of deploy/nginx.conf, one worker (the machine
# this was written for has two cores), everything in $DIR.
start_nginx() {
    NGINX_PORT=$(free_port)
    local servers
    servers=$(nginx_servers)
    cat >"$DIR/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $DIR/nginx.pid;
error_log $DIR/nginx-error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $DIR/nginx-body;
  proxy_temp_path $DIR/nginx-proxy;
  fastcgi_temp_path $DIR/nginx-fastcgi;
  uwsgi_temp_path $DIR/nginx-uwsgi;
  scgi_temp_path $DIR/nginx-scgi;
  map \$http_upgrade \$connection_upgrade { default upgrade; '' close; }
  upstream herald {
$servers
    keepalive 32;
  }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://herald;
      proxy_http_version 1.1;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection \$connection_upgrade;
      proxy_set_header Host \$host;
      proxy_read_timeout 3600s;
      proxy_send_timeout 3600s;
      proxy_connect_timeout 2s;
      proxy_buffering off;
      proxy_next_upstream error timeout http_502 http_503;
    }
  }
}
EOF
    "${PIN_SERVER[@]}" nginx -p "$DIR" -c "$DIR/nginx.conf" -e "$DIR/nginx-error.log" >"$DIR/nginx.out" 2>&1 &
    PIDS+=($!)
    wait_listen "$NGINX_PORT" nginx $!
}

# L4 proxies: plain TCP to NODE_PORTS, one worker / thread like start_nginx; nginx fails over
# passively, HAProxy checks /readyz as deploy/haproxy-tcp.cfg does.
start_nginx_stream() {
    NGINX_PORT=$(free_port)
    local servers
    servers=$(nginx_servers)
    cat >"$DIR/nginx.conf" <<EOF
load_module ${NGINX_STREAM_MODULE:-/usr/lib/nginx/modules/ngx_stream_module.so};
daemon off;
worker_processes 1;
pid $DIR/nginx.pid;
error_log $DIR/nginx-error.log warn;
events { worker_connections 8192; }
stream {
  upstream herald {
$servers
  }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    proxy_pass herald;
    proxy_connect_timeout 2s;
    proxy_timeout 1h;
  }
}
EOF
    "${PIN_SERVER[@]}" nginx -p "$DIR" -c "$DIR/nginx.conf" -e "$DIR/nginx-error.log" >"$DIR/nginx.out" 2>&1 &
    PIDS+=($!)
    wait_listen "$NGINX_PORT" "nginx (stream)" $!
}

start_haproxy() {
    NGINX_PORT=$(free_port)
    local servers="" p i=0
    for p in "${NODE_PORTS[@]}"; do
        i=$((i + 1))
        servers+="  server node$i 127.0.0.1:$p check"$'\n'
    done
    cat >"$DIR/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 4000
defaults
  mode tcp
  option splice-auto
  timeout connect 2s
  timeout client 1h
  timeout server 1h
frontend herald_in
  bind 127.0.0.1:$NGINX_PORT
  default_backend herald_nodes
backend herald_nodes
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
  default-server inter 1s fall 1 rise 2
$servers
EOF
    "${PIN_SERVER[@]}" haproxy -db -f "$DIR/haproxy.cfg" >"$DIR/haproxy.log" 2>&1 &
    PIDS+=($!)
    wait_listen "$NGINX_PORT" haproxy $!
}

# Starts one configuration; sets CLIENT_PORT (where herald-load connects).
start_config() {
    local config=$1 i base proxy
    DIR="$OUT/$config"
    mkdir -p "$DIR"
    NODE_PORTS=()
    base=${config%%+*}
    proxy=${config#"$base"}
    proxy=${proxy#+}
    case "$base" in
        memory)
            start_node 1
            wait_ready "${NODE_PORTS[0]}"
            ;;
        nats-*)
            start_nats
            for i in $(seq "${base#nats-}"); do start_node "$i" "nats://127.0.0.1:$NATS_PORT"; done
            for p in "${NODE_PORTS[@]}"; do wait_ready "$p"; done
            proxy=${proxy:-nginx}
            ;;
        *) say "unknown configuration $config"; return 1 ;;
    esac
    case "$proxy" in
        "") CLIENT_PORT=${NODE_PORTS[0]}; return 0 ;;
        nginx) start_nginx ;;
        l4) start_nginx_stream ;;
        haproxy) start_haproxy ;;
        *) say "unknown proxy $proxy in $config (nginx, l4 or haproxy)"; return 1 ;;
    esac
    CLIENT_PORT=$NGINX_PORT
}

# CPU time every process of the configuration has used so far (herald nodes, nats-server, the
# nginx master and its worker), in clock ticks.
config_ticks() {
    local pid t=0 kid kids
    for pid in "${PIDS[@]}"; do
        t=$((t + $(proc_ticks "$pid")))
        kids=()
        read -ra kids 2>/dev/null <"/proc/$pid/task/$pid/children" || true
        for kid in "${kids[@]}"; do
            t=$((t + $(proc_ticks "$kid")))
        done
    done
    echo "$t"
}
TICKS_PER_SEC=$(getconf CLK_TCK 2>/dev/null || echo 100)

# run CONFIG SCENARIO ARGS… — appends one JSON line (with "config" and the servers' CPU time per
# delivery) to results.jsonl.
FAILED=0
run() {
    local config=$1 scenario=$2
    shift 2
    say "  $scenario"
    local status=0 before after line
    before=$(config_ticks)
    line=$("${PIN_LOAD[@]}" "$LOADGEN" "$scenario" "$@" --port "$CLIENT_PORT" --json --quiet --strict \
        --label "$scenario" 2>>"$DIR/herald-load.log") || status=$?
    after=$(config_ticks)
    if [[ "$line" == "{"* ]]; then
        printf '{"config":"%s","server_cpu_s":%s,%s\n' "$config" \
            "$(awk -v t=$((after - before)) -v hz="$TICKS_PER_SEC" 'BEGIN { printf "%.2f", t / hz }')" \
            "${line:1}" >>"$RESULTS"
    fi
    case $status in
        0) ;;
        1) FAILED=1; say "    checks failed (see the table and $DIR)" ;;
        *) FAILED=1; say "    run failed (exit $status); see $DIR/herald-load.log" ;;
    esac
}

# PERF=1: sample every server process of the configuration (herald nodes, nats-server, the proxy)
# with `perf record -e cpu-clock` during the fan-out run and fold the stacks into
# $OUT/CONFIG.folded and $OUT/CONFIG.svg (inferno; installed from crates.io when missing).
PERF_PID=""
perf_start() {
    local pids=() pid kid kids
    for pid in "${PIDS[@]}"; do
        pids+=("$pid")
        kids=()
        read -ra kids 2>/dev/null <"/proc/$pid/task/$pid/children" || true
        for kid in "${kids[@]}"; do pids+=("$kid"); done
    done
    perf record -e cpu-clock -F "${PERF_FREQ:-499}" -g --call-graph dwarf,16384 -o "$DIR/perf.data" \
        -p "$(IFS=,; echo "${pids[*]}")" >"$DIR/perf.log" 2>&1 &
    PERF_PID=$!
}

perf_stop() {
    local config=$1
    [[ -n "$PERF_PID" ]] || return 0
    kill -INT "$PERF_PID" 2>/dev/null || true
    wait "$PERF_PID" 2>/dev/null || true
    PERF_PID=""
    perf script -i "$DIR/perf.data" --no-inline 2>/dev/null | inferno-collapse-perf --all >"$OUT/$config.folded"
    inferno-flamegraph --title "herald $config: 1 topic x $SUBS subscribers, $PUBS publisher, ${PAYLOAD} B, fan-out (every server process)" \
        <"$OUT/$config.folded" >"$OUT/$config.svg"
    rm -f "$DIR/perf.data"
    say "    flamegraph: $OUT/$config.svg"
}

say "results in $OUT; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for config in $CONFIGS; do
    say "$config"
    if ! start_config "$config"; then
        FAILED=1
        stop_all
        continue
    fi
    if ((PERF)); then perf_start; fi
    run "$config" fanout --topics 1 --subscribers "$SUBS" --publishers "$PUBS" \
        --payload "$PAYLOAD" --duration "$DURATION" --drain 3s \
        ${WINDOW:+--window "$WINDOW"} ${MAX_UNACKED:+--max-unacked "$MAX_UNACKED"}
    if ((PERF)); then perf_stop "$config"; fi
    run "$config" latency --topics 1 --subscribers "$SUBS" --publishers "$PUBS" \
        --payload "$PAYLOAD" --rate "$LATENCY_RATE" --duration "$DURATION" --warmup "$WARMUP" --drain 3s
    stop_all
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

{
    echo
    machine_line
    echo "load average (1/5/15 min): $LOAD_BEFORE before, $LOAD_AFTER after;" \
        "$(if ((PIN)); then echo "servers on CPU 0, herald-load on CPU 1"; else echo "nothing pinned"; fi)"
    echo "herald $(herald_rev "$ROOT") (release);" \
        "$(nats-server --version 2>&1 | head -1); $(nginx -v 2>&1 | sed 's/.*: //')$(command -v haproxy >/dev/null && haproxy -v 2>&1 | head -1 | cut -d' ' -f1-3 | sed 's/^/; /')"
    echo "1 topic × $SUBS subscribers, $PUBS publisher(s), $PAYLOAD B payload, runs of $DURATION;" \
        "latency at $LATENCY_RATE msg/s ($((LATENCY_RATE * SUBS)) deliveries/s)"
    echo
    python3 - "$RESULTS" <<'EOF'
import json, sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
by = {(r["config"], r["label"]): r for r in rows}
configs = []
for r in rows:
    if r["config"] not in configs:
        configs.append(r["config"])
base = configs[0] if configs else None


def get(config, label, *path):
    v = by.get((config, label))
    for key in path:
        if not isinstance(v, dict):
            return None
        v = v.get(key)
    return v


def cpu_us(config, label):
    r = by.get((config, label))
    if not r or not r.get("deliveries"):
        return None
    return r["server_cpu_s"] * 1e6 / r["deliveries"]


def checks(config):
    runs = [by.get((config, label)) for label in ("fanout", "latency")]
    if any(r is None for r in runs):
        return "no result"
    cell = " / ".join(
        str(sum(r.get(k, 0) for r in runs)) for k in ("lost", "duplicated", "reordered")
    )
    if not all(r.get("pass") for r in runs):
        cell += " FAILED: " + "; ".join(f for r in runs for f in r.get("failures", []))
    return cell


metrics = [
    ("fan-out deliveries/s", lambda c: get(c, "fanout", "deliveries_per_sec"), "{:,.0f}", True),
    ("fan-out publishes/s", lambda c: get(c, "fanout", "published_per_sec"), "{:,.0f}", True),
    ("fan-out servers' CPU µs / delivery", lambda c: cpu_us(c, "fanout"), "{:.2f}", False),
    ("latency p50 µs", lambda c: get(c, "latency", "latency_us", "p50"), "{:,.0f}", False),
    ("latency p99 µs", lambda c: get(c, "latency", "latency_us", "p99"), "{:,.0f}", False),
    ("latency p99.9 µs", lambda c: get(c, "latency", "latency_us", "p99_9"), "{:,.0f}", False),
    ("latency max µs", lambda c: get(c, "latency", "latency_us", "max"), "{:,.0f}", False),
]

print("| | " + " | ".join(configs) + " |")
print("|---|" + "---:|" * len(configs))
for name, f, fmt, higher_better in metrics:
    cells = []
    b = f(base) if base else None
    for c in configs:
        v = f(c)
        if v is None:
            cells.append("–")
            continue
        cell = fmt.format(v)
        if c != base and b:
            cell += f" ({v / b:.2f} ×)"
        cells.append(cell)
    print(f"| {name} | " + " | ".join(cells) + " |")
print("| lost / duplicated / reordered | " + " | ".join(checks(c) for c in configs) + " |")
print()
print(f"Ratios in parentheses are against `{base}`.")
EOF
} | tee "$OUT/table.md"
say ""
say "results: $OUT (results.jsonl, table.md, per-configuration logs)"
exit "$FAILED"
