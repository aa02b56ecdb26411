#!/usr/bin/env bash
# MinIO, built from source and run natively on loopback.
#   minio.sh install | start | stop | status
set -euo pipefail
source "$(dirname "$0")/env.sh"

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

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

start() {
  install
  if running; then log "already running (pid $(cat "$PIDFILE"))"; return 0; fi
  if healthy; then log "a MinIO not started by us answers on $MINIO_ADDRESS; using it"; return 0; fi
  mkdir -p "$DIR"/data{1..4} "$DIR/events"
  # The AMQP notification target: shared settings, then this host's address.
  set -a; source "$ROOT/infra/minio/notify.env"; set +a
  export MINIO_NOTIFY_AMQP_URL_BUCKETFN="amqp://$RABBITMQ_USER:$RABBITMQ_PASSWORD@$RABBITMQ_HOST:$RABBITMQ_PORT"
  if [ "$BUCKETFN_PROFILE" = durable ]; then
    export MINIO_NOTIFY_AMQP_QUEUE_DIR_BUCKETFN="$DIR/events"
    export MINIO_NOTIFY_AMQP_QUEUE_LIMIT_BUCKETFN=100000
  fi
  export MINIO_BROWSER_REDIRECT=off MINIO_UPDATE=off
  # The drive directories share the root filesystem, which MinIO refuses
  # ("drive not found") unless told this is a CI/dev setup.
  export MINIO_CI_CD=on
  nohup "$MINIO_BIN" server --quiet --address "$MINIO_ADDRESS" \
    --console-address "$MINIO_CONSOLE_ADDRESS" "$DIR/data{1...4}" >"$DIR/minio.log" 2>&1 &
  echo $! >"$PIDFILE"
  # /live answers before the erasure set can serve; /cluster waits for quorum.
  for _ in $(seq 1 120); do
    if healthy; then log "up on $MINIO_ADDRESS (profile $BUCKETFN_PROFILE)"; return 0; fi
    running || { log "MinIO exited:"; tail -20 "$DIR/minio.log" >&2; exit 1; }
    sleep 0.5
  done
  log "MinIO did not become healthy in 60 s:"; tail -20 "$DIR/minio.log" >&2; exit 1
}

stop() {
  running || { rm -f "$PIDFILE"; return 0; }
  local pid; pid="$(cat "$PIDFILE")"
  kill "$pid"
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$PIDFILE"
  log "stopped"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) running && echo running || echo stopped ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
