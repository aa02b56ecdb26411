#!/usr/bin/env bash
# RabbitMQ from Debian's rabbitmq-server, run natively on loopback with its
# data, logs, cookie and config under the project's state directory.
#   rabbitmq.sh install | start | stop | status | ctl ARGS...
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=env.sh
source "$(dirname "$0")/env.sh"

DIR="$STATE/rabbitmq"
SBIN=/usr/lib/rabbitmq/bin

install() {
  if [ -x "$SBIN/rabbitmq-server" ]; then return 0; fi
  log "installing Debian's rabbitmq-server"
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends rabbitmq-server >/dev/null
  # The package may start a system node; ours runs from the state directory.
  $sudo service rabbitmq-server stop >/dev/null 2>&1 || true
}

setup_env() {
  mkdir -p "$DIR"/{mnesia,log,home}
  export HOME="$DIR/home"
  export RABBITMQ_NODENAME="bucketfn@localhost"
  export RABBITMQ_NODE_IP_ADDRESS="$RABBITMQ_HOST" RABBITMQ_NODE_PORT="$RABBITMQ_PORT"
  export RABBITMQ_DIST_PORT="${RABBITMQ_DIST_PORT:-25672}"
  export RABBITMQ_MNESIA_BASE="$DIR/mnesia" RABBITMQ_LOG_BASE="$DIR/log"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$DIR/enabled_plugins"
  export RABBITMQ_CONFIG_FILE="$DIR/rabbitmq.conf"
  export RABBITMQ_PID_FILE="$DIR/rabbitmq.pid"
  export ERL_EPMD_ADDRESS=127.0.0.1 ERL_EPMD_PORT="${ERL_EPMD_PORT:-4369}"
  # The Erlang distribution port (inter-node and CLI traffic) on loopback too.
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  echo "[rabbitmq_management]." >"$RABBITMQ_ENABLED_PLUGINS_FILE"
  cat >"$RABBITMQ_CONFIG_FILE" <<CONF
listeners.tcp.default = $RABBITMQ_HOST:$RABBITMQ_PORT
management.tcp.ip = $RABBITMQ_HOST
management.tcp.port = $RABBITMQ_MANAGEMENT_PORT
default_user = $RABBITMQ_USER
default_pass = $RABBITMQ_PASSWORD
CONF
  # No `loopback_users = none`: the default user may connect from loopback only.
}

running() { setup_env; "$SBIN/rabbitmq-diagnostics" -q ping >/dev/null 2>&1; }

start() {
  install
  if running; then log "already running"; return 0; fi
  if port_open "$RABBITMQ_HOST" "$RABBITMQ_PORT"; then
    log "a broker not started by us answers on $RABBITMQ_HOST:$RABBITMQ_PORT; using it"; return 0
  fi
  setup_env
  "$SBIN/rabbitmq-server" -detached
  touch "$DIR/started"
  if ! "$SBIN/rabbitmqctl" -q wait --timeout 120 "$RABBITMQ_PID_FILE" >/dev/null 2>&1; then
    die_with_log 30 "RabbitMQ did not start:" "$DIR"/log/*.log
  fi
  log "up on $RABBITMQ_HOST:$RABBITMQ_PORT (management on :$RABBITMQ_MANAGEMENT_PORT)"
}

stop() {
  [ -f "$DIR/started" ] || return 0
  setup_env
  "$SBIN/rabbitmqctl" -q stop >/dev/null 2>&1 || true
  # epmd outlives the node; it was started for this node, so stop it too.
  epmd -kill >/dev/null 2>&1 || true
  rm -f "$DIR/started"
  log "stopped"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) print_status running ;;
  # rabbitmqctl against this node (fault injection, inspection): ctl list_queues …
  ctl) setup_env; shift; exec "$SBIN/rabbitmqctl" "$@" ;;
  *) echo "usage: $0 install|start|stop|status|ctl ARGS..." >&2; exit 2 ;;
esac
