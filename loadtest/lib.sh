# shellcheck shell=bash
# Helpers the load, benchmark and CI scripts share, so a fix to how a server is started, probed or
# stopped lands in every script at once. Sourced, never run: `source "$ROOT/loadtest/lib.sh"`.
# The scripts keep their own `set -euo pipefail`, and their own say() (each prefixes its messages
# its own way), which the functions below report through.
#
#   port_open PORT            0 when something accepts TCP connections on 127.0.0.1:PORT
#   free_port                 prints a port no one listens on, below the ephemeral range
#   free_port_py PY           the same by bind() in python PY, between 20000 and 32000
#   wait_port PORT PID [N]    0 once PORT accepts; 1 when PID exits first or after N/10 s (100)
#   wait_live_py PY URL PID   0 once URL/livez answers 200; 1 when PID exits first or after 10 s
#   stop_pids [--note M] N PID...  TERM; after N/10 s say M and KILL the rest; last PID's status
#   proc_ticks PID            CPU time PID has used so far (user + system), in clock ticks
#   pin_cpus SERVER LOAD      sets PIN_SERVER / PIN_LOAD to taskset prefixes, or to nothing
#   raise_fd_limit            raises the open-file limit to 65536, or to the hard limit
#   build_release ROOT        builds herald and herald-load (release)
#   herald_bin ROOT           prints which herald the CI scripts test (HERALD_BIN, else newest)
#   herald_rev ROOT           prints the checkout's short commit, or ?
#   machine_line              prints the "machine: CPUs, model, kernel" line of a result table

# bash's /dev/tcp, so the load scripts need nothing but bash to probe a port.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Below the ephemeral range, so no client socket (ours included) can be holding the port between
# this check and the server's bind.
free_port() {
    local low p
    low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    ((low > 12000)) || low=32768
    for _ in $(seq 200); do
        p=$((10000 + RANDOM % (low - 11000)))
        port_open "$p" || { echo "$p"; return 0; }
    done
    say "no free port found"
    return 1
}

# The CI scripts (k6, schemathesis) have a python at hand in their virtualenv and ask the kernel
# by bind(), which also sees a port bound but not yet listening; they start the server again on
# another port if it is taken anyway.
free_port_py() {
    "$1" - <<'PY'
import random, socket
for _ in range(1000):
    port = random.randint(20000, 32000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break
else:
    raise SystemExit("no free port in 20000..32000")
PY
}

# Stops waiting as soon as the server has exited: it will not start listening any more.
wait_port() {
    local port=$1 pid=$2 tries=${3:-100}
    for _ in $(seq "$tries"); do
        port_open "$port" && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    return 1
}

# The CI scripts send requests as soon as this returns, so they wait for an answer, not just an
# open port.
wait_live_py() {
    "$1" - "$2" "$3" <<'PY'
import os, sys, time, urllib.request
url, pid = sys.argv[1], int(sys.argv[2])
deadline = time.time() + 10
while time.time() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(1)
    try:
        with urllib.request.urlopen(url + "/livez", timeout=1) as r:
            if r.status == 200:
                sys.exit(0)
    except Exception:
        pass
    time.sleep(0.05)
sys.exit(1)
PY
}

# herald drains for up to SHUTDOWN_TIMEOUT_SECS after SIGTERM; a script must not wait forever for
# it (or for a peer) to go. All PIDs get SIGTERM first so they drain side by side. Only the ones
# still alive get SIGKILL: a PID that has gone may be another process's by now.
stop_pids() {
    local note="" tenths pid kid alive status=0
    if [[ "$1" == --note ]]; then note=$2; shift 2; fi
    tenths=$1
    shift
    for pid in "$@"; do kill "$pid" 2>/dev/null || true; done
    for _ in $(seq "$tenths"); do
        alive=0
        for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for pid in "$@"; do
        kill -0 "$pid" 2>/dev/null || continue
        [[ -n "$note" ]] && say "$note"
        note=""
        # A master killed this way leaves its workers (nginx) running and listening: kill them too.
        for kid in $(ps -o pid= --ppid "$pid" 2>/dev/null); do kill -9 "$kid" 2>/dev/null || true; done
        kill -9 "$pid" 2>/dev/null || true
    done
    for pid in "$@"; do
        status=0
        wait "$pid" 2>/dev/null || status=$?
    done
    return "$status"
}

# CPU per delivery is steadier than a rate on a shared machine; fields 14 and 15 of stat are
# utime and stime. A process that has gone counts 0.
proc_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# Server and load generator on CPUs of their own, so neither steals the other's; a machine with
# one CPU (or no taskset) still runs, with a warning.
# shellcheck disable=SC2034 # PIN_SERVER and PIN_LOAD are for the sourcing script.
pin_cpus() {
    if [[ $(nproc) -ge 2 ]] && command -v taskset >/dev/null; then
        PIN_SERVER=(taskset -c "$1")
        PIN_LOAD=(taskset -c "$2")
    else
        say "warning: fewer than 2 CPUs or no taskset; running unpinned"
        PIN_SERVER=()
        PIN_LOAD=()
    fi
}

# Every connection is a descriptor on each side; the hard limit is the fallback where 65536 is
# not allowed.
raise_fd_limit() { ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true; }

build_release() {
    say "building herald and herald-load (release)"
    (cd "$1" && cargo build --release --quiet -p herald -p herald-load)
}

# Whichever of release and debug was built last is what the developer is working on; a debug
# build when there is neither, because it is the quicker one to make. cargo's output goes to
# stderr: stdout is the answer.
herald_bin() {
    local root=$1 rel dbg
    if [[ -n "${HERALD_BIN:-}" ]]; then
        echo "$HERALD_BIN"
        return 0
    fi
    rel=$root/target/release/herald
    dbg=$root/target/debug/herald
    if [[ -x "$rel" ]] && { [[ ! -x "$dbg" ]] || [[ "$rel" -nt "$dbg" ]]; }; then
        echo "$rel"
    elif [[ -x "$dbg" ]]; then
        echo "$dbg"
    else
        (cd "$root" && cargo build -p herald --bin herald) >&2 || return
        echo "$dbg"
    fi
}

# Results name the commit they were measured on; outside a git checkout that is unknown, not an
# error.
herald_rev() { (cd "$1" && git rev-parse --short HEAD 2>/dev/null || echo '?'); }

machine_line() {
    echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -r)"
}

# A virtualenv at $1 holding exactly the hash-pinned wheels of requirements file $2 (python: $3,
# default python3). Debian splits venv support into python3-venv, installed here as root.
pinned_venv() {
    local venv=$1 req=$2 python=${3:-python3}
    if [[ ! -x "$venv/bin/python" ]] && ! "$python" -m venv "$venv" 2>/dev/null; then
        if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
            rm -rf "$venv"
            apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
            "$python" -m venv "$venv"
        else
            echo "'$python -m venv' failed; install python3-venv (Debian/Ubuntu) or set PYTHON" >&2
            return 1
        fi
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        --require-hashes --only-binary=:all: -r "$req"
}
