#!/usr/bin/env bash
# A distributed MinIO on loopback, for `make cluster-faults`: four `minio server`
# processes (the binary minio.sh builds), four drives each, one erasure set of 16.
#   cluster-minio.sh start | stop | status | urls | kill N | restart N
#
# Every server is given the same 16 endpoints, one per drive, in one argument
# list without ellipses: a single pool (each ellipsis argument would be a pool of
# its own). A server tells its own drives from the others' by its --address, so
# each server's drives live under a directory of their own (as MinIO's
# buildscripts/verify-healing.sh does on one host). With 16 drives MinIO's
# default parity is EC:4: one server down (4 drives) still leaves read and write
# quorum. MinIO insists on the same MINIO_* settings on every server, so all of
# them publish their events to one AMQP URL: RabbitMQ cluster node 1 here (in
# production, a load balancer or DNS name in front of the cluster's nodes).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=env.sh
source "$(dirname "$0")/env.sh"
# shellcheck source-path=SCRIPTDIR source=cluster-env.sh
source "$(dirname "$0")/cluster-env.sh"

DIR="$CLUSTER_DIR/minio"
SERVERS=(1 2 3 4)

address() { echo "127.0.0.1:$(cluster_minio_port "$1")"; }
pidfile() { echo "$DIR/server$1.pid"; }
healthy() { curl -fsS -o /dev/null "http://$(address "$1")/minio/health/cluster" 2>/dev/null; }

endpoints() {
  local n d
  for n in "${SERVERS[@]}"; do
    for d in 1 2 3 4; do printf 'http://%s%s/server%s/d%s ' "$(address "$n")" "$DIR" "$n" "$d"; done
  done
}

# boot N: start server N in the background (its peers may still be starting).
boot() {
  local n="$1"
  mkdir -p "$DIR/server$n"/d{1..4}
  (
    set -a; source "$ROOT/infra/minio/notify.env"; set +a
    MINIO_NOTIFY_AMQP_URL_BUCKETFN="amqp://$RABBITMQ_USER:$RABBITMQ_PASSWORD@$RABBITMQ_HOST:$(cluster_amqp_port 1)"
    export MINIO_NOTIFY_AMQP_URL_BUCKETFN
    # Drives on the root filesystem: allowed only in a CI/dev setup.
    export MINIO_BROWSER_REDIRECT=off MINIO_UPDATE=off MINIO_CI_CD=on MINIO_ERASURE_SET_DRIVE_COUNT=16
    # Inside a container (/.dockerenv, Kubernetes) MinIO waits for every endpoint
    # that resolves to loopback to "resolve to a valid IP", for ever; this (MinIO's
    # cmd/endpoint.go) names the host:port that is this server's own instead.
    _MINIO_SERVER_LOCAL="$(address "$n")"
    export _MINIO_SERVER_LOCAL
    # shellcheck disable=SC2046  # the endpoints are one word each
    start_pid "$(pidfile "$n")" "$MINIO_BIN" server --quiet --address "$(address "$n")" \
      --console-address "127.0.0.1:$((CLUSTER_BASE + 110 + n))" $(endpoints) >>"$DIR/server$n.log" 2>&1
  )
}

# ready N: server N sees quorum; a server that has exited never will.
ready() {
  healthy "$1" && return 0
  pid_running "$(pidfile "$1")" || die_with_log 20 "MinIO server $1 exited:" "$DIR/server$1.log"
  return 1
}

start() {
  "$(dirname "$0")/minio.sh" install
  local n
  for n in "${SERVERS[@]}"; do
    if pid_running "$(pidfile "$n")"; then continue; fi
    if port_open 127.0.0.1 "$(cluster_minio_port "$n")"; then
      log "port $(cluster_minio_port "$n") is taken by something else; set BUCKETFN_CLUSTER_PORT_BASE"; exit 1
    fi
    boot "$n"
  done
  for n in "${SERVERS[@]}"; do
    wait_until 240 0.5 ready "$n" || die_with_log 20 "server $n not healthy in 120 s:" "$DIR/server$n.log"
  done
  log "distributed MinIO up: ${#SERVERS[@]} servers on $(address 1)-$(cluster_minio_port 4), 16 drives"
}

stop() {
  local n
  for n in "${SERVERS[@]}"; do stop_pid "$(pidfile "$n")" 10; done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) print_status healthy 1 ;;
  urls) for n in "${SERVERS[@]}"; do printf 'http://%s ' "$(address "$n")"; done; echo ;;
  # Fault injection: SIGKILL server N (no clean shutdown); restart boots it again.
  kill) pid="$(cat "$(pidfile "$2")")"; kill -9 "$pid"; wait_until 40 0.25 pid_gone "$pid"; log "server $2 killed" ;;
  restart) boot "$2"; wait_until 240 0.5 ready "$2"; log "server $2 back" ;;
  *) echo "usage: $0 start|stop|status|urls|kill N|restart N" >&2; exit 2 ;;
esac
