# shellcheck shell=bash disable=SC2034  # the settings are used by the scripts that source this
# Shared settings and helpers of the native (no-Docker) servers; sourced by the
# scripts here. Everything is overridable from the environment and binds to
# loopback only.

# MinIO's community edition ships as source only. The issue's pin,
# v0.0.0-20251024040631-10b0a234d25b, is refused by the Go module proxy
# ("not available"); this is the newest version it serves.
MINIO_VERSION="${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE="${BUCKETFN_STATE:-$ROOT/.state}"
CACHE="${BUCKETFN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bucketfn}"
MINIO_BIN="$CACHE/minio/$MINIO_VERSION/minio"

MINIO_ADDRESS="${MINIO_ADDRESS:-127.0.0.1:9000}"
MINIO_CONSOLE_ADDRESS="${MINIO_CONSOLE_ADDRESS:-127.0.0.1:9001}"
export MINIO_ROOT_USER="${MINIO_ROOT_USER:-minioadmin}"
export MINIO_ROOT_PASSWORD="${MINIO_ROOT_PASSWORD:-minioadmin}"

# SeaweedFS: a second S3 server, without bucket notifications, on which the
# sweep alone drives the functions (polling mode). Built from source like MinIO,
# at the version the Go module proxy serves for issue 9's pin. Its S3 gateway
# uses port 8333; the master, volume and filer servers take the ports around it
# (each gRPC port is its HTTP port + 10000), away from MinIO, RabbitMQ and
# bucketfn's own 8080 (SeaweedFS's volume server defaults to it).
SEAWEEDFS_VERSION="${SEAWEEDFS_VERSION:-v0.0.0-20261109003541-7506e5f91cd6}"
SEAWEEDFS_BIN="$CACHE/seaweedfs/$SEAWEEDFS_VERSION/weed"
SEAWEEDFS_HOST="${SEAWEEDFS_HOST:-127.0.0.1}"
SEAWEEDFS_S3_PORT="${SEAWEEDFS_S3_PORT:-8333}"
SEAWEEDFS_MASTER_PORT="${SEAWEEDFS_MASTER_PORT:-9333}"
SEAWEEDFS_VOLUME_PORT="${SEAWEEDFS_VOLUME_PORT:-8334}"
SEAWEEDFS_FILER_PORT="${SEAWEEDFS_FILER_PORT:-8888}"
SEAWEEDFS_ACCESS_KEY="${SEAWEEDFS_ACCESS_KEY:-bucketfn}"
SEAWEEDFS_SECRET_KEY="${SEAWEEDFS_SECRET_KEY:-bucketfn-seaweedfs}"

RABBITMQ_HOST="${RABBITMQ_HOST:-127.0.0.1}"
RABBITMQ_PORT="${RABBITMQ_PORT:-5672}"
RABBITMQ_MANAGEMENT_PORT="${RABBITMQ_MANAGEMENT_PORT:-15672}"
RABBITMQ_USER="${RABBITMQ_USER:-guest}"
RABBITMQ_PASSWORD="${RABBITMQ_PASSWORD:-guest}"

# "fast" (the default) publishes each event directly: lowest latency, and what
# the broker misses during an outage the runtime's reconciliation sweep heals.
# "durable" keeps events in MinIO's queue_dir across an outage instead, at the
# cost of its sender's 3 s poll on every event.
BUCKETFN_PROFILE="${BUCKETFN_PROFILE:-fast}"

log() { printf '%s %s\n' "[$(basename "$0" .sh)]" "$*" >&2; }

# The helpers below run under the callers' `set -euo pipefail`. The predicates
# (pid_running, pid_gone, port_open, wait_until) report through their status
# and are meant for `if`/`||`/`&&`, where a non-zero status does not trip
# errexit. The actions (start_pid, stop_pid) are meant to be called as plain
# commands, so that a failing step in them still stops the script.

# pid_running PIDFILE: PIDFILE exists and its process is alive.
pid_running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# pid_gone PID: the process PID no longer exists.
pid_gone() { ! kill -0 "$1" 2>/dev/null; }

# port_open HOST PORT: something accepts TCP connections on HOST:PORT.
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# wait_until TRIES INTERVAL CMD...: run CMD up to TRIES times, sleeping
# INTERVAL seconds after each failure; succeed as soon as CMD does, fail if it
# never does. CMD may itself exit the script to give up early.
wait_until() {
  local tries="$1" interval="$2" _try
  shift 2
  for _try in $(seq 1 "$tries"); do
    if "$@"; then return 0; fi
    sleep "$interval"
  done
  return 1
}

# start_pid PIDFILE CMD...: run CMD in the background, immune to hangups, and
# record its pid in PIDFILE. Redirect the call to send CMD's output to a log.
start_pid() {
  local pidfile="$1"
  shift
  nohup "$@" &
  echo $! >"$pidfile"
}

# stop_pid PIDFILE [TIMEOUT]: SIGTERM the process in PIDFILE, give it TIMEOUT
# whole seconds (default 10) to exit, then SIGKILL it; remove PIDFILE. Logs
# "stopped" only if there was a live process to stop.
stop_pid() {
  local pidfile="$1" timeout="${2:-10}" pid
  pid_running "$pidfile" || { rm -f "$pidfile"; return 0; }
  pid="$(cat "$pidfile")"
  kill -TERM "$pid"
  wait_until $((timeout * 4)) 0.25 pid_gone "$pid" || true
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
  log "stopped"
}

# die_with_log LINES MESSAGE FILE...: log MESSAGE, show the last LINES lines of
# the FILEs on stderr, and exit 1.
die_with_log() {
  local lines="$1" message="$2"
  shift 2
  log "$message"
  tail -n "$lines" "$@" >&2 || true
  exit 1
}

# print_status CMD...: print "running" if CMD succeeds, else "stopped".
print_status() { if "$@"; then echo running; else echo stopped; fi; }
