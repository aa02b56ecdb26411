# shellcheck shell=bash
# The MinIO identities `bucketfn init` keeps for a deployment (runtime/ops/identity.py):
# users <deployment>-runtime and <deployment>-api, named as in runtime/core/names.py
# (Deployment.identity). Each one's secret is made here once (48 hex digits, readable
# by this user only) and kept across restarts. Sourced after env.sh.

DEPLOYMENT="${BUCKETFN_DEPLOYMENT:-bucketfn}"

# identity_user ROLE: the MinIO user ROLE (runtime, api) runs as.
identity_user() { echo "$DEPLOYMENT-$1"; }

# identity_secret ROLE: that user's secret, made on first use.
identity_secret() {
  local file="$STATE/identities/$DEPLOYMENT-$1"
  if [ ! -s "$file" ]; then
    mkdir -p "$(dirname "$file")"
    (umask 077 && od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$file")
  fi
  cat "$file"
}

# The RabbitMQ identities `bucketfn init` keeps (runtime/ops/access.py): users
# <queue prefix>-runtime and -publisher (runtime/core/names.py, Queues), secrets made
# here like the MinIO ones. amqp_url_as ROLE (runtime, publisher): that user's URL.
AMQP_PREFIX="${BUCKETFN_QUEUE_PREFIX:-$DEPLOYMENT}"
amqp_url_as() {
  echo "amqp://$AMQP_PREFIX-$1:$(identity_secret "amqp-$1")@$RABBITMQ_HOST:$RABBITMQ_PORT"
}

# amqp_run_as ROLE: export the broker URL of ROLE's identity, unless the caller
# chose one of its own (BUCKETFN_AMQP_URL set).
amqp_run_as() {
  if [ -n "${BUCKETFN_AMQP_URL:-}" ]; then return 0; fi
  BUCKETFN_AMQP_URL="$(amqp_url_as "$1")/"
  export BUCKETFN_AMQP_URL
}

# run_as ROLE: export the S3 credentials of ROLE's identity, unless the caller
# chose credentials of its own (BUCKETFN_S3_ACCESS_KEY set).
run_as() {
  if [ -n "${BUCKETFN_S3_ACCESS_KEY:-}" ]; then return 0; fi
  BUCKETFN_S3_ACCESS_KEY="$(identity_user "$1")"
  BUCKETFN_S3_SECRET_KEY="$(identity_secret "$1")"
  export BUCKETFN_S3_ACCESS_KEY BUCKETFN_S3_SECRET_KEY
}
