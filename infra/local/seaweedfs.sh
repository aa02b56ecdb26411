#!/usr/bin/env bash
# SeaweedFS, built from source and run natively on loopback: a second S3 store,
# with no bucket notifications, for polling mode (the sweep drives functions).
#   seaweedfs.sh install | start | stop | status
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=env.sh
source "$(dirname "$0")/env.sh"

DIR="$STATE/seaweedfs"
PIDFILE="$DIR/weed.pid"

install() {
  if [ -x "$SEAWEEDFS_BIN" ]; then return 0; fi
  command -v go >/dev/null || { log "Go is required to build SeaweedFS (go build)"; exit 1; }
  log "building SeaweedFS $SEAWEEDFS_VERSION from source (first run only; cached in $CACHE)"
  mkdir -p "$(dirname "$SEAWEEDFS_BIN")"
  local start=$SECONDS src
  # Not `go install …/weed@version`: SeaweedFS's go.mod has a replace directive
  # (go-bip39 → cosmos/go-bip39), which `go install pkg@version` refuses. So
  # fetch the module from the proxy and build it as the main module, where the
  # replace applies — the same source, the same versions its go.sum pins.
  src="$(go mod download -json "github.com/seaweedfs/seaweedfs@$SEAWEEDFS_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [ -d "$src" ] || { log "could not download github.com/seaweedfs/seaweedfs@$SEAWEEDFS_VERSION"; exit 1; }
  (cd "$src" && GOFLAGS="-trimpath -mod=readonly -buildvcs=false" \
    go build -o "$SEAWEEDFS_BIN.tmp" ./weed)
  mv "$SEAWEEDFS_BIN.tmp" "$SEAWEEDFS_BIN"
  log "built in $((SECONDS - start)) s"
}

S3_URL="http://$SEAWEEDFS_HOST:$SEAWEEDFS_S3_PORT"
MASTER_URL="http://$SEAWEEDFS_HOST:$SEAWEEDFS_MASTER_PORT"

# The S3 gateway's identities: one admin identity, so requests are signed
# (SigV4) with the deployment's key pair; no anonymous access.
write_s3_config() {
  (umask 077 && cat >"$DIR/s3.json" <<JSON
{
  "identities": [
    {
      "name": "bucketfn",
      "credentials": [{"accessKey": "$SEAWEEDFS_ACCESS_KEY", "secretKey": "$SEAWEEDFS_SECRET_KEY"}],
      "actions": ["Admin", "Read", "List", "Tagging", "Write"]
    }
  ]
}
JSON
  )
}

# Ready when writes would succeed: the master hands out a file id (it refuses
# for 15 s after a restart over existing volumes, "warming up", while every S3
# PUT waits) and the S3 gateway answers a signed ListBuckets (the identity is
# loaded). A file id costs nothing: no data is written for it.
ready() {
  curl -fsS -o /dev/null "$MASTER_URL/dir/assign" 2>/dev/null || return 1
  curl -fsS -o /dev/null --aws-sigv4 "aws:amz:us-east-1:s3" \
    --user "$SEAWEEDFS_ACCESS_KEY:$SEAWEEDFS_SECRET_KEY" "$S3_URL/" 2>/dev/null
}

# Ready yet? A weed that has exited never will be, so give up at once.
ready_or_die() {
  ready && return 0
  pid_running "$PIDFILE" || die_with_log 30 "SeaweedFS exited:" "$DIR/weed.log"
  return 1
}

start() {
  install
  if pid_running "$PIDFILE"; then log "already running (pid $(cat "$PIDFILE"))"; return 0; fi
  if ready; then log "a SeaweedFS not started by us answers on $S3_URL; using it"; return 0; fi
  if port_open "$SEAWEEDFS_HOST" "$SEAWEEDFS_S3_PORT"; then
    log "something not started by us listens on $SEAWEEDFS_HOST:$SEAWEEDFS_S3_PORT; stop it first"
    exit 1
  fi
  mkdir -p "$DIR/data" "$DIR/master"
  write_s3_config
  local t0
  t0="$(date +%s%N)"
  # One process: master, volume server, filer and S3 gateway, every TCP
  # listener on loopback. The data (volumes, the filer's leveldb, raft state)
  # stays under $DIR; so do the HTTP unix sockets, which default to /tmp. The
  # in-process gRPC sockets have no option and are /tmp/seaweedfs-*-grpc-<port>.sock.
  # No telemetry (on by default), none of the extra endpoints (Iceberg, Lance).
  # A lone master that resumes its raft state first waits out the election
  # timeout (10 s by default; 1 s here), and the volume server's default 10 s
  # pre-stop pause outlasted stop_pid's grace.
  start_pid "$PIDFILE" "$SEAWEEDFS_BIN" server \
    -ip="$SEAWEEDFS_HOST" -ip.bind="$SEAWEEDFS_HOST" \
    -dir="$DIR/data" -master.dir="$DIR/master" \
    -master.port="$SEAWEEDFS_MASTER_PORT" -master.telemetry=false -master.electionTimeout=1s \
    -master.volumeSizeLimitMB=64 -volume.max=100 \
    -volume.port="$SEAWEEDFS_VOLUME_PORT" -volume.preStopSeconds=0 \
    -filer -filer.port="$SEAWEEDFS_FILER_PORT" -filer.localSocket="$DIR/filer.sock" \
    -s3 -s3.port="$SEAWEEDFS_S3_PORT" -s3.config="$DIR/s3.json" -s3.localSocket="$DIR/s3.sock" \
    -s3.port.iceberg=0 -s3.port.lance=0 \
    >"$DIR/weed.log" 2>&1
  wait_until 240 0.25 ready_or_die ||
    die_with_log 30 "SeaweedFS did not become ready in 60 s:" "$DIR/weed.log"
  log "up on $S3_URL (S3; master $MASTER_URL) in $((($(date +%s%N) - t0) / 1000000)) ms"
}

stop() { stop_pid "$PIDFILE" 15; }

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) print_status pid_running "$PIDFILE" ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
