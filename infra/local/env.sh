# Shared settings of the native (no-Docker) servers; sourced by the scripts here.
# Everything is overridable from the environment and binds to loopback only.

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

RABBITMQ_HOST="${RABBITMQ_HOST:-127.0.0.1}"
RABBITMQ_PORT="${RABBITMQ_PORT:-5672}"
RABBITMQ_MANAGEMENT_PORT="${RABBITMQ_MANAGEMENT_PORT:-15672}"
RABBITMQ_USER="${RABBITMQ_USER:-guest}"
RABBITMQ_PASSWORD="${RABBITMQ_PASSWORD:-guest}"

# "durable" keeps events in MinIO's queue_dir across a RabbitMQ outage, at the
# cost of its sender's 3 s poll; "fast" publishes directly (lower latency).
BUCKETFN_PROFILE="${BUCKETFN_PROFILE:-durable}"

log() { printf '%s %s\n' "[$(basename "$0" .sh)]" "$*" >&2; }
