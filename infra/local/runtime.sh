#!/usr/bin/env bash
# The bucketfn runtime as a background process for `make up`.
#   runtime.sh start | stop | status
set -euo pipefail
source "$(dirname "$0")/env.sh"

DIR="$STATE/runtime"
PIDFILE="$DIR/runtime.pid"
running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

case "${1:-}" in
  start)
    if running; then log "already running (pid $(cat "$PIDFILE"))"; exit 0; fi
    mkdir -p "$DIR"
    nohup "$ROOT/.venv/bin/bucketfn" run "${BUCKETFN_APP:-functions:app}" >>"$DIR/runtime.log" 2>&1 &
    echo $! >"$PIDFILE"
    sleep 1
    running || { log "runtime exited:"; tail -20 "$DIR/runtime.log" >&2; exit 1; }
    log "running (pid $(cat "$PIDFILE")); logs: $DIR/runtime.log"
    ;;
  stop)
    running || { rm -f "$PIDFILE"; exit 0; }
    pid="$(cat "$PIDFILE")"
    kill -TERM "$pid"   # graceful: stop consuming, drain in-flight work
    for _ in $(seq 1 160); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$PIDFILE"; log "stopped"
    ;;
  status) running && echo running || echo stopped ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
