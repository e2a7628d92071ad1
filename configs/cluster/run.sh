#!/usr/bin/env bash
# A cluster of dashboard_apps gateways on loopback, for trying it out:
#
#   127.0.0.1:6390   Redis (password: $REDIS_PASSWORD)
#   127.0.0.1:8091   node1, a gateway instance (admin API 127.0.0.1:2021)
#   127.0.0.1:8092   node2, a gateway instance (admin API 127.0.0.1:2022)
#   127.0.0.1:8080   the load balancer: open http://helpdesk.localhost:8080/
#   127.0.0.1:8081   the demo's stand-in helpdesk, and apps on 9101, 9102, 9104
#
# The nodes share a storage directory and Redis. Usage, from anywhere:
#
#   configs/cluster/run.sh              start it all; Ctrl-C stops it all
#   configs/cluster/run.sh redis-stop   (another terminal) stop Redis
#   configs/cluster/run.sh redis-start  start Redis again
#
# Needs Go and redis-server (Debian: apt-get install redis-server). The
# ports are the demo's (./Caddyfile): run one or the other. State and logs
# go to $CLUSTER_DIR (default: $TMPDIR/dashboard-apps-cluster). CADDY names
# a Caddy built with this module to use instead of building one.
set -euo pipefail
cd "$(dirname "$0")/../.."

dir=${CLUSTER_DIR:-${TMPDIR:-/tmp}/dashboard-apps-cluster}
redis_port=6390
# A demo password: Redis listens on loopback only. Use your own elsewhere.
export REDIS_PASSWORD=${REDIS_PASSWORD:-demo-redis-password-change-me}
export REDIS_URL="redis://:$REDIS_PASSWORD@127.0.0.1:$redis_port/0"
export DASHBOARD_APPS_WEBHOOK_SECRET=${DASHBOARD_APPS_WEBHOOK_SECRET:-demo-webhook-secret-change-me}
export CLUSTER_STORAGE="$dir/shared-storage"

redis_start() {
	redis-server --bind 127.0.0.1 --port "$redis_port" --requirepass "$REDIS_PASSWORD" \
		--save '' --appendonly no --dir "$dir" \
		--daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
}

redis_stop() {
	if [ -s "$dir/redis.pid" ] && kill "$(cat "$dir/redis.pid")" 2>/dev/null; then
		rm -f "$dir/redis.pid"
		echo "Redis stopped: the nodes keep serving from their own caches and evict on their own"
	fi
}

# wait_port waits until something listens on 127.0.0.1:$1.
wait_port() {
	for _ in $(seq 300); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	echo "nothing listens on 127.0.0.1:$1; see the logs in $dir" >&2
	return 1
}

case ${1:-up} in
redis-stop)
	redis_stop
	exit
	;;
redis-start)
	redis_start
	wait_port "$redis_port"
	echo "Redis started: the nodes are connected again within 5 s"
	exit
	;;
up) ;;
*)
	echo "usage: $0 [up|redis-stop|redis-start]" >&2
	exit 2
	;;
esac

command -v redis-server >/dev/null || {
	echo "redis-server is needed: apt-get install redis-server" >&2
	exit 1
}
mkdir -p "$dir"
caddy=${CADDY:-$dir/caddy}
if [ -z "${CADDY:-}" ]; then
	echo "--- building Caddy with the module into $caddy"
	go build -o "$caddy" ./cmd/caddy
fi

pids=()
stop_all() {
	trap - EXIT INT TERM
	echo
	echo "--- stopping"
	if [ ${#pids[@]} -gt 0 ]; then
		kill "${pids[@]}" 2>/dev/null || true
		wait "${pids[@]}" 2>/dev/null || true
	fi
	redis_stop >/dev/null
}
trap stop_all EXIT INT TERM

# start NAME ARGS...: runs a Caddy in the background, with its own config
# and data directories (autosave.json, the balancer's storage) and log.
start() {
	local name=$1
	shift
	mkdir -p "$dir/$name"
	env XDG_CONFIG_HOME="$dir/$name/config" XDG_DATA_HOME="$dir/$name/data" "$@" \
		>"$dir/$name.log" 2>&1 &
	pids+=($!)
}

echo "--- starting Redis, the helpdesk and its apps, two nodes, the balancer (logs: $dir)"
redis_start
wait_port "$redis_port"
start backend "$caddy" run --adapter caddyfile --config configs/cluster/backend.Caddyfile
start node1 env NODE_NAME=node1 NODE_PORT=8091 ADMIN_PORT=2021 \
	"$caddy" run --adapter caddyfile --config configs/cluster/node.Caddyfile
start node2 env NODE_NAME=node2 NODE_PORT=8092 ADMIN_PORT=2022 \
	"$caddy" run --adapter caddyfile --config configs/cluster/node.Caddyfile
start balancer "$caddy" run --adapter caddyfile --config configs/cluster/balancer.Caddyfile
for port in 8081 9101 8091 8092 8080; do
	wait_port "$port"
done

cat <<EOF

The cluster is up. Open http://helpdesk.localhost:8080/ and sign in.
Each response says which node answered (X-Dashboard-Apps-Node).

  node1 metrics:  curl -s 127.0.0.1:2021/metrics | grep redis_up
  a webhook:      curl -s -H 'Host: helpdesk.localhost:8080' \\
                    'http://127.0.0.1:8080/_dashboard_apps/webhook?secret=$DASHBOARD_APPS_WEBHOOK_SECRET' \\
                    -d '{"event": "conversation_updated", "id": 1, "account": {"id": 1}, "meta": {"sender": {"id": 101}}}'
  Redis down/up:  $0 redis-stop; $0 redis-start

Ctrl-C stops it all.
EOF
wait
