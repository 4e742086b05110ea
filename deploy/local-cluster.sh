#!/usr/bin/env bash
# A three-node herald cluster on loopback in one command: three clustered nats-servers with
# JetStream (clients on NATS_PORT and the next two ports, routes on CLUSTER_PORT and the next two),
# three herald nodes (NATS_URL listing all three servers, NATS_REPLICAS=3) and nginx in front on
# :8080 (deploy/nginx.conf). Ctrl-C stops everything.
#
#   deploy/local-cluster.sh            # builds herald (release) first
#   HERALD=target/debug/herald deploy/local-cluster.sh
#   PORT=9000 NODE_PORTS="9001 9002 9003" NATS_PORT=4333 CLUSTER_PORT=6333 deploy/local-cluster.sh
#
# Needs nats-server and nginx (Debian: apt-get install nats-server nginx). Logs and the JetStream
# stores live in a temporary directory printed at start.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${PORT:-8080}
NATS_PORT=${NATS_PORT:-4222}
CLUSTER_PORT=${CLUSTER_PORT:-6222}
read -r -a NODE_PORTS <<<"${NODE_PORTS:-8081 8082 8083}"
for tool in nats-server nginx; do
  command -v "$tool" >/dev/null || { echo "$tool not found: apt-get install nats-server nginx" >&2; exit 1; }
done
if [ -z "${HERALD:-}" ]; then
  cargo build --release --quiet
  HERALD=target/release/herald
fi

dir=$(mktemp -d -t herald-cluster.XXXXXX)
pids=()
stop() {
  trap - INT TERM EXIT
  echo "stopping..."
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "logs kept in $dir"
}
trap stop INT TERM EXIT

# Three JetStream servers in one NATS cluster: herald's stream keeps a copy on each.
routes="" nats_urls=""
for i in 0 1 2; do
  routes+="${routes:+,}nats://127.0.0.1:$((CLUSTER_PORT + i))"
  nats_urls+="${nats_urls:+,}nats://127.0.0.1:$((NATS_PORT + i))"
done
for i in 0 1 2; do
  nats-server -js -a 127.0.0.1 -p "$((NATS_PORT + i))" -n "nats$((i + 1))" -sd "$dir/js$((i + 1))" \
    --cluster_name herald --cluster "nats://127.0.0.1:$((CLUSTER_PORT + i))" --routes "$routes" \
    >"$dir/nats$((i + 1)).log" 2>&1 &
  pids+=($!)
done

for i in "${!NODE_PORTS[@]}"; do
  HOST=127.0.0.1 PORT=${NODE_PORTS[$i]} NATS_URL="$nats_urls" NATS_REPLICAS=3 NODE_ID="node$((i + 1))" \
    DRAIN_DURATION_SECS=${DRAIN_DURATION_SECS:-5} "$HERALD" >"$dir/node$((i + 1)).log" 2>&1 &
  pids+=($!)
done

servers=""
for p in "${NODE_PORTS[@]}"; do servers+="  server 127.0.0.1:$p max_fails=1 fail_timeout=3s;"$'\n'; done
# deploy/nginx.conf with this run's ports, wrapped in a minimal main config.
{
  echo "daemon off; worker_processes 1; pid $dir/nginx.pid; error_log $dir/nginx-error.log warn;"
  echo "events { worker_connections 4096; }"
  echo "http { access_log off; client_body_temp_path $dir/body; proxy_temp_path $dir/proxy;"
  echo "fastcgi_temp_path $dir/fastcgi; uwsgi_temp_path $dir/uwsgi; scgi_temp_path $dir/scgi;"
  sed -e "/^upstream herald {/,/^}/c\\upstream herald {\n${servers//$'\n'/\\n}  keepalive 32;\n}" \
      -e "s/listen 8080;/listen 127.0.0.1:$PORT;/" -e "s#/var/log/nginx/#$dir/nginx-#" deploy/nginx.conf
  echo "}"
} >"$dir/nginx.conf"
nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/nginx-error.log" &
pids+=($!)

for p in "${NODE_PORTS[@]}"; do
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$p/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
done
echo "herald cluster: http://127.0.0.1:$PORT (ws://127.0.0.1:$PORT/ws) -> nodes ${NODE_PORTS[*]}, NATS $nats_urls"
echo "logs: $dir   (Ctrl-C stops everything)"
wait -n "${pids[@]}" || true
