#!/usr/bin/env bash
# MinIO, built from source and run natively on loopback.
#   minio.sh install | start | stop | status
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=env.sh
source "$(dirname "$0")/env.sh"
# shellcheck source-path=SCRIPTDIR source=identities.sh
source "$(dirname "$0")/identities.sh"

DIR="$STATE/minio"
PIDFILE="$DIR/minio.pid"

install() {
  if [ -x "$MINIO_BIN" ]; then return 0; fi
  command -v go >/dev/null || { log "Go is required to build MinIO (go install)"; exit 1; }
  log "building MinIO $MINIO_VERSION from source (first run only; cached in $CACHE)"
  mkdir -p "$(dirname "$MINIO_BIN")"
  local start=$SECONDS
  GOBIN="$(dirname "$MINIO_BIN")" GOFLAGS="-trimpath" go install "github.com/minio/minio@$MINIO_VERSION"
  log "built in $((SECONDS - start)) s"
}

healthy() { curl -fsS -o /dev/null "http://$MINIO_ADDRESS/minio/health/cluster" 2>/dev/null; }

# Healthy yet? A MinIO that has exited never will be, so give up at once.
healthy_or_die() {
  healthy && return 0
  pid_running "$PIDFILE" || die_with_log 20 "MinIO exited:" "$DIR/minio.log"
  return 1
}

start() {
  install
  if pid_running "$PIDFILE"; then log "already running (pid $(cat "$PIDFILE"))"; return 0; fi
  if healthy; then log "a MinIO not started by us answers on $MINIO_ADDRESS; using it"; return 0; fi
  mkdir -p "$DIR"/data{1..4} "$DIR/events"
  # The AMQP notification target: shared settings, then this host's address.
  set -a; source "$ROOT/infra/minio/notify.env"; set +a
  # As the publisher user `bucketfn init` creates: the events exchange, nothing else.
  # Until init has run, MinIO's target cannot connect and retries (no rule uses it yet).
  MINIO_NOTIFY_AMQP_URL_BUCKETFN="$(amqp_url_as publisher)"
  export MINIO_NOTIFY_AMQP_URL_BUCKETFN
  if [ "$BUCKETFN_PROFILE" = durable ]; then
    export MINIO_NOTIFY_AMQP_QUEUE_DIR_BUCKETFN="$DIR/events"
    export MINIO_NOTIFY_AMQP_QUEUE_LIMIT_BUCKETFN=100000
  fi
  export MINIO_BROWSER_REDIRECT=off MINIO_UPDATE=off
  # The drive directories share the root filesystem, which MinIO refuses
  # ("drive not found") unless told this is a CI/dev setup.
  export MINIO_CI_CD=on
  start_pid "$PIDFILE" "$MINIO_BIN" server --quiet --address "$MINIO_ADDRESS" \
    --console-address "$MINIO_CONSOLE_ADDRESS" "$DIR/data{1...4}" >"$DIR/minio.log" 2>&1
  # /live answers before the erasure set can serve; /cluster waits for quorum.
  wait_until 120 0.5 healthy_or_die ||
    die_with_log 20 "MinIO did not become healthy in 60 s:" "$DIR/minio.log"
  log "up on $MINIO_ADDRESS (profile $BUCKETFN_PROFILE)"
}

stop() { stop_pid "$PIDFILE" 10; }

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) print_status pid_running "$PIDFILE" ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
