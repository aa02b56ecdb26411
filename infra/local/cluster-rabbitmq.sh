#!/usr/bin/env bash
# A three-node RabbitMQ cluster on loopback (Debian's rabbitmq-server), for
# `make cluster-faults`: real clustering, the quorum queues replicated on all three.
#   cluster-rabbitmq.sh start | stop | status | urls | kill N | restart N | ctl N ARGS...
#
# Node N (1..3) is bfcN@localhost with its own AMQP, management and distribution
# ports (cluster-env.sh) and its own data; the nodes share one Erlang cookie and
# one epmd, on its own port: nodes find each other through it.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=env.sh
source "$(dirname "$0")/env.sh"
# shellcheck source-path=SCRIPTDIR source=cluster-env.sh
source "$(dirname "$0")/cluster-env.sh"

BASE="$CLUSTER_BASE"
DIR="$CLUSTER_DIR/rabbitmq"
SBIN=/usr/lib/rabbitmq/bin
NODES=(1 2 3)
export ERL_EPMD_ADDRESS=127.0.0.1 ERL_EPMD_PORT=$((BASE + 40))

node_name() { echo "bfc$1@localhost"; }
amqp_port() { cluster_amqp_port "$1"; }

# setup_env N: the environment rabbitmq-server and the CLI tools need for node N.
# One HOME for all: the CLI and every node read the same cookie from it.
setup_env() {
  local n="$1" d="$DIR/node$1"
  mkdir -p "$d"/{mnesia,log} "$DIR/home"
  export HOME="$DIR/home"
  if [ ! -f "$HOME/.erlang.cookie" ]; then
    (umask 077; head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$HOME/.erlang.cookie")
    chmod 400 "$HOME/.erlang.cookie"
  fi
  export RABBITMQ_NODENAME
  RABBITMQ_NODENAME="$(node_name "$n")"
  RABBITMQ_NODE_PORT="$(amqp_port "$n")"
  export RABBITMQ_NODE_IP_ADDRESS="$RABBITMQ_HOST" RABBITMQ_NODE_PORT
  export RABBITMQ_DIST_PORT=$((BASE + 30 + n))
  export RABBITMQ_MNESIA_BASE="$d/mnesia" RABBITMQ_LOG_BASE="$d/log"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins"
  export RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf" RABBITMQ_PID_FILE="$d/rabbitmq.pid"
  # Distribution (inter-node and CLI traffic) on loopback only.
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  echo "[rabbitmq_management]." >"$RABBITMQ_ENABLED_PLUGINS_FILE"
  cat >"$RABBITMQ_CONFIG_FILE" <<CONF
listeners.tcp.default = $RABBITMQ_HOST:$RABBITMQ_NODE_PORT
management.tcp.ip = $RABBITMQ_HOST
management.tcp.port = $((BASE + 20 + n))
default_user = $RABBITMQ_USER
default_pass = $RABBITMQ_PASSWORD
CONF
}

ctl() { local n="$1"; shift; (setup_env "$n"; "$SBIN/rabbitmqctl" -n "$(node_name "$n")" "$@"); }
up() { ctl "$1" -q ping >/dev/null 2>&1; }

# boot N: start node N detached and wait until it runs (a restarted node rejoins
# the cluster it was in by itself: its cluster membership is in its data).
boot() {
  local n="$1"
  (
    setup_env "$n"
    "$SBIN/rabbitmq-server" -detached
    if ! "$SBIN/rabbitmqctl" -n "$RABBITMQ_NODENAME" -q wait --timeout 120 "$RABBITMQ_PID_FILE" >/dev/null 2>&1; then
      die_with_log 30 "node $n did not start:" "$RABBITMQ_LOG_BASE"/*.log
    fi
  )
}

start() {
  [ -x "$SBIN/rabbitmq-server" ] || "$(dirname "$0")/rabbitmq.sh" install
  local n pid
  for n in "${NODES[@]}"; do
    if port_open "$RABBITMQ_HOST" "$(amqp_port "$n")" && ! up "$n"; then
      log "port $(amqp_port "$n") is taken by something else; set BUCKETFN_CLUSTER_PORT_BASE"; exit 1
    fi
  done
  mkdir -p "$DIR" && touch "$DIR/started"
  # The nodes boot side by side: a clustered node waits at boot for the peers it
  # last saw (seconds each on a busy machine, and one by one could wait for ever).
  local pids=()
  for n in "${NODES[@]}"; do
    if ! up "$n"; then boot "$n" & pids+=($!); fi
  done
  for pid in "${pids[@]}"; do wait "$pid" || { log "a node did not start"; exit 1; }; done
  # Join 2 and 3 to 1 once (a fresh node is reset first, as join_cluster requires).
  for n in 2 3; do
    if ! ctl 1 -q cluster_status --formatter json | grep -q "$(node_name "$n")"; then
      # (The CLI's feature-flag warnings on a fresh node are noise: stderr dropped.)
      ctl "$n" -q stop_app >/dev/null 2>&1
      ctl "$n" -q reset >/dev/null 2>&1
      ctl "$n" -q join_cluster "$(node_name 1)" >/dev/null 2>&1
      ctl "$n" -q start_app >/dev/null 2>&1
    fi
  done
  log "cluster of ${#NODES[@]} up: AMQP on $RABBITMQ_HOST:$(amqp_port 1)-$(amqp_port 3)"
}

no_nodes() { ! epmd -names 2>/dev/null | grep -q '^name '; }

# pid N: the Erlang VM of node N.
pid() { cat "$DIR/node$1/rabbitmq.pid"; }

stop() {
  [ -f "$DIR/started" ] || return 0
  local n
  for n in "${NODES[@]}"; do ctl "$n" -q stop >/dev/null 2>&1 || true; done
  # epmd outlives the nodes; this one (its own port) was started for them. It
  # refuses to die while a node is still registered, which lags the stop a little.
  wait_until 40 0.5 no_nodes || true
  epmd -kill >/dev/null 2>&1 || true
  rm -f "$DIR/started"
  log "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) print_status up 1 ;;
  # One AMQP URL per node, space-separated.
  urls) for n in "${NODES[@]}"; do
      printf 'amqp://%s:%s@%s:%s/ ' "$RABBITMQ_USER" "$RABBITMQ_PASSWORD" "$RABBITMQ_HOST" "$(amqp_port "$n")"
    done; echo ;;
  # Fault injection: SIGKILL node N's VM (no clean shutdown), then boot it again.
  kill) kill -9 "$(pid "$2")"; wait_until 40 0.25 pid_gone "$(pid "$2")"; log "node $2 killed" ;;
  restart) boot "$2"; log "node $2 back" ;;
  ctl) shift; n="$1"; shift; ctl "$n" "$@" ;;
  *) echo "usage: $0 start|stop|status|urls|kill N|restart N|ctl N ARGS..." >&2; exit 2 ;;
esac
