#!/usr/bin/env bash
# The bucketfn runtime as a background process for `make up`.
#   runtime.sh start | stop | status
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=env.sh
source "$(dirname "$0")/env.sh"
# shellcheck source-path=SCRIPTDIR source=identities.sh
source "$(dirname "$0")/identities.sh"

DIR="$STATE/runtime"
PIDFILE="$DIR/runtime.pid"

case "${1:-}" in
  start)
    if pid_running "$PIDFILE"; then log "already running (pid $(cat "$PIDFILE"))"; exit 0; fi
    mkdir -p "$DIR"
    run_as runtime # its own MinIO identity (init.sh made it), never the admin
    amqp_run_as runtime # and its own broker identity: it cannot publish as MinIO
    start_pid "$PIDFILE" "$ROOT/.venv/bin/bucketfn" run "${BUCKETFN_APP:-functions:app}" >>"$DIR/runtime.log" 2>&1
    sleep 1
    pid_running "$PIDFILE" || die_with_log 20 "runtime exited:" "$DIR/runtime.log"
    log "running (pid $(cat "$PIDFILE")); logs: $DIR/runtime.log"
    ;;
  # SIGTERM is graceful: stop consuming, drain in-flight work; allow it 40 s.
  stop) stop_pid "$PIDFILE" 40 ;;
  status) print_status pid_running "$PIDFILE" ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
