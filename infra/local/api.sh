#!/usr/bin/env bash
# The jobs API (`bucketfn api`) as a background process for `make up`.
#   api.sh start | stop | status
# Without BUCKETFN_API_TOKEN it serves the token in $STATE/api/token, made here
# once (64 hex digits, readable by this user only) and kept across restarts.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=env.sh
source "$(dirname "$0")/env.sh"
# shellcheck source-path=SCRIPTDIR source=identities.sh
source "$(dirname "$0")/identities.sh"

DIR="$STATE/api"
PIDFILE="$DIR/api.pid"
TOKEN_FILE="$DIR/token"
API_ADDRESS="${BUCKETFN_API_ADDRESS:-127.0.0.1:8080}"

healthy() { curl -fsS -o /dev/null "http://$API_ADDRESS/healthz" 2>/dev/null; }

# Answering yet? An API that has exited never will, so give up at once.
healthy_or_die() {
  healthy && return 0
  pid_running "$PIDFILE" || die_with_log 20 "the API exited:" "$DIR/api.log"
  return 1
}

start() {
  if pid_running "$PIDFILE"; then log "already running (pid $(cat "$PIDFILE"))"; return 0; fi
  mkdir -p "$DIR"
  local args=() where="the token in BUCKETFN_API_TOKEN"
  if [ -z "${BUCKETFN_API_TOKEN:-}" ]; then
    if [ ! -s "$TOKEN_FILE" ]; then
      (umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$TOKEN_FILE")
      log "wrote a new API token to $TOKEN_FILE"
    fi
    args=(--token-file "$TOKEN_FILE")
    where="the token in $TOKEN_FILE"
  fi
  run_as api # its own MinIO identity: what it presigns can do only what the API may
  start_pid "$PIDFILE" "$ROOT/.venv/bin/bucketfn" api "${BUCKETFN_APP:-functions:app}" "${args[@]}" \
    >>"$DIR/api.log" 2>&1
  wait_until 80 0.25 healthy_or_die ||
    die_with_log 20 "the API did not answer on $API_ADDRESS in 20 s:" "$DIR/api.log"
  log "jobs API on http://$API_ADDRESS (pid $(cat "$PIDFILE")); send $where as 'Authorization: Bearer'; logs: $DIR/api.log"
}

case "${1:-}" in
  start) start ;;
  # SIGTERM is graceful: requests in flight get up to 10 s; allow it 15.
  stop) stop_pid "$PIDFILE" 15 ;;
  status) print_status pid_running "$PIDFILE" ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
