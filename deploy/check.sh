#!/usr/bin/env bash
# Checks the deploy/ files as far as a machine without a Docker engine or a cluster can:
#   1. the release build the Dockerfile runs (`cargo build --release --locked`);
#   2. docker-compose.yml against the Compose specification's schema, the Kubernetes manifests
#      against the Kubernetes API schemas (strict), every YAML file parses;
#   3. the Dockerfile with a Dockerfile linter;
#   4. herald.service with `systemd-analyze verify` and its offline security score;
#   5. the timeouts agree: every stop/grace period is longer than SHUTDOWN_TIMEOUT_SECS;
#   6. nginx -t and haproxy -c accept the load balancer configurations;
#   7. the binary runs as the non-root user the Dockerfile creates, and `herald probe` (the image's
#      HEALTHCHECK) finds it from HOST/PORT alone; SIGTERM exits 0.
# Tools come from pinned registry packages in a temporary directory. A step whose tool is missing
# (npm, systemd-analyze, setpriv) is reported as skipped; any failure exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."

PYYAML=6.0.3
CHECK_JSONSCHEMA=0.39.0
KUBERNETES_VALIDATE=1.37.0
DOCKERFILE_UTILS=0.16.3
# The lowest Kubernetes minor the manifests are checked against, besides the package's newest.
K8S_OLDEST=1.29.0

work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
skipped=()

echo "== release build (the Dockerfile's command)"
cargo build --release --locked --bin herald
bin="$PWD/target/release/herald"

echo "== YAML: parse, Compose schema, Kubernetes schemas"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q "pyyaml==$PYYAML" "check-jsonschema==$CHECK_JSONSCHEMA" \
  "kubernetes-validate==$KUBERNETES_VALIDATE"
"$work/venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec deploy/docker-compose.yml
manifests=(deploy/k8s/deployment.yaml deploy/k8s/service.yaml deploy/k8s/pdb.yaml deploy/k8s/nats.yaml)
"$work/venv/bin/kubernetes-validate" --strict "${manifests[@]}"
"$work/venv/bin/kubernetes-validate" --strict -k "$K8S_OLDEST" "${manifests[@]}"

echo "== timeouts and user ids agree"
"$work/venv/bin/python" - <<'EOF'
import re, yaml

def secs(text):
    m = re.fullmatch(r"(\d+)s?", str(text))
    assert m, f"cannot read a duration from {text!r}"
    return int(m.group(1))

unit = open("deploy/herald.service").read()
dockerfile = open("deploy/Dockerfile").read()
compose = yaml.safe_load(open("deploy/docker-compose.yml"))["services"]["herald"]
deployment = yaml.safe_load(open("deploy/k8s/deployment.yaml"))
pod = deployment["spec"]["template"]["spec"]
container = pod["containers"][0]
env = {e["name"]: e.get("value") for e in container["env"]}

shutdown = int(env["SHUTDOWN_TIMEOUT_SECS"])
assert shutdown == int(re.search(r"SHUTDOWN_TIMEOUT_SECS=(\d+)", unit).group(1))
assert shutdown == int(compose["environment"]["SHUTDOWN_TIMEOUT_SECS"])
pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
checks = {
    "systemd TimeoutStopSec": secs(re.search(r"TimeoutStopSec=(\S+)", unit).group(1)),
    "compose stop_grace_period": secs(compose["stop_grace_period"]),
    "k8s terminationGracePeriodSeconds - preStop":
        pod["terminationGracePeriodSeconds"] - pre_stop,
}
for name, value in checks.items():
    assert value > shutdown, f"{name} = {value} is not above SHUTDOWN_TIMEOUT_SECS = {shutdown}"
    print(f"ok: {name} = {value} > {shutdown}")

uid = int(re.search(r"useradd --uid (\d+)", dockerfile).group(1))
assert f"USER {uid}:{uid}" in dockerfile
sc = pod["securityContext"]
assert sc["runAsNonRoot"] and sc["runAsUser"] == uid and sc["runAsGroup"] == uid
assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
assert "LimitNOFILE=1048576" in unit
print(f"ok: the image's user {uid} is the pod's runAsUser; probes on /readyz and /livez")
EOF

echo "== proxy configurations (nginx -t, haproxy -c)"
if command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; then
  nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
  # deploy/nginx.conf is the http{} block of a full configuration: wrap it as one.
  printf 'events {}\nhttp {\n  include %s;\n}\npid %s;\n' "$PWD/deploy/nginx.conf" "$work/nginx.pid" \
    >"$work/nginx-http.conf"
  "$nginx_bin" -q -t -c "$work/nginx-http.conf" -e "$work/nginx-error.log"
  if [ -f /usr/lib/nginx/modules/ngx_stream_module.so ]; then
    "$nginx_bin" -q -t -c "$PWD/deploy/nginx-stream.conf" -e "$work/nginx-error.log"
  else
    skipped+=("nginx-stream.conf (no libnginx-mod-stream)")
  fi
else
  skipped+=("nginx configurations (no nginx)")
fi
if command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ]; then
  haproxy_bin=$(command -v haproxy || echo /usr/sbin/haproxy)
  "$haproxy_bin" -q -c -f deploy/haproxy.cfg
  "$haproxy_bin" -q -c -f deploy/haproxy-tcp.cfg
else
  skipped+=("haproxy configurations (no haproxy)")
fi

echo "== Dockerfile lint"
if command -v npm >/dev/null; then
  npm install --silent --no-audit --no-fund --prefix "$work/npm" "dockerfile-utils@$DOCKERFILE_UTILS" >/dev/null
  "$work/npm/node_modules/.bin/dockerfile-utils" lint deploy/Dockerfile
  echo "ok: no findings"
else
  skipped+=("Dockerfile lint (no npm)")
fi

echo "== systemd unit"
if command -v systemd-analyze >/dev/null; then
  # verify needs ExecStart= to exist: point it at the binary just built.
  sed "s#/usr/local/bin/herald#$bin#" deploy/herald.service > "$work/herald.service"
  systemd-analyze verify "$work/herald.service"
  systemd-analyze security --offline=yes --threshold=20 "$work/herald.service" | tail -n 1
else
  skipped+=("systemd-analyze (not installed)")
fi

echo "== runs as the image's non-root user; herald probe finds it from HOST/PORT"
run_as=()
if [ "$(id -u)" = 0 ]; then
  if ! command -v setpriv >/dev/null; then
    skipped+=("non-root run (no setpriv)")
  else
    if ! id herald >/dev/null 2>&1; then
      # The Dockerfile's own command.
      groupadd --gid 10001 herald
      useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin herald
    fi
    run_as=(setpriv --reuid=herald --regid=herald --clear-groups --no-new-privs
      --inh-caps=-all --bounding-set=-all)
  fi
fi
if [ "$(id -u)" != 0 ] || [ ${#run_as[@]} -gt 0 ]; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  install -m 0755 "$bin" "$work/herald"
  chmod 0755 "$work"
  env HOST=127.0.0.1 PORT="$port" SHUTDOWN_TIMEOUT_SECS=2 LOG_FORMAT=json \
    "${run_as[@]}" "$work/herald" > "$work/server.log" 2>&1 &
  server_pid=$!
  up=""
  for _ in $(seq 1 100); do
    if HOST=127.0.0.1 PORT="$port" "${run_as[@]}" "$work/herald" probe >/dev/null 2>&1; then
      up=yes
      break
    fi
    sleep 0.1
  done
  [ -n "$up" ] || { cat "$work/server.log"; echo "herald did not become healthy"; exit 1; }
  user=$(ps -o user= -p "$server_pid")
  echo "ok: server runs as '$user' (uid $(ps -o uid= -p "$server_pid" | tr -d ' '))"
  if [ "$(id -u)" = 0 ] && [ "$user" != herald ]; then echo "expected user herald"; exit 1; fi
  HOST=127.0.0.1 PORT="$port" "$work/herald" probe --path /readyz
  HERALD_URL="ws://127.0.0.1:$port" "${run_as[@]}" "$work/herald" pub deploy.check '{"ok":true}'
  kill -TERM "$server_pid"
  status=0
  wait "$server_pid" || status=$?
  server_pid=""
  [ "$status" = 0 ] || { cat "$work/server.log"; echo "exit $status after SIGTERM"; exit 1; }
  echo "ok: SIGTERM drained and exited 0"
fi

if [ ${#skipped[@]} -gt 0 ]; then
  printf 'skipped: %s\n' "${skipped[@]}"
fi
echo "== deploy checks ok"
