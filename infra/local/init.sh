#!/usr/bin/env bash
# `bucketfn init` for `make up`, as MinIO's admin: the only identity that may create
# the users, policies and notification target it keeps. It is handed the secrets of
# the identities the runtime and the API then run as (runtime.sh, api.sh).
#   init.sh [APP]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=env.sh
source "$(dirname "$0")/env.sh"
# shellcheck source-path=SCRIPTDIR source=identities.sh
source "$(dirname "$0")/identities.sh"

BUCKETFN_S3_ACCESS_KEY="$MINIO_ROOT_USER"
BUCKETFN_S3_SECRET_KEY="$MINIO_ROOT_PASSWORD"
BUCKETFN_RUNTIME_S3_SECRET_KEY="$(identity_secret runtime)"
BUCKETFN_API_S3_SECRET_KEY="$(identity_secret api)"
# How MinIO reaches RabbitMQ: init adds a target with it for a deployment whose
# target MinIO's env lacks (minio.sh sets bucketfn's), as minio.sh does.
# MinIO publishes as the deployment's publisher user, which init creates (with the
# runtime's broker user) from these secrets.
BUCKETFN_MINIO_AMQP_URL="${BUCKETFN_MINIO_AMQP_URL:-$(amqp_url_as publisher)}"
BUCKETFN_AMQP_RUNTIME_PASSWORD="$(identity_secret amqp-runtime)"
BUCKETFN_AMQP_PUBLISHER_PASSWORD="$(identity_secret amqp-publisher)"
export BUCKETFN_S3_ACCESS_KEY BUCKETFN_S3_SECRET_KEY BUCKETFN_RUNTIME_S3_SECRET_KEY \
  BUCKETFN_API_S3_SECRET_KEY BUCKETFN_MINIO_AMQP_URL \
  BUCKETFN_AMQP_RUNTIME_PASSWORD BUCKETFN_AMQP_PUBLISHER_PASSWORD
exec "$ROOT/.venv/bin/bucketfn" init "${1:-${BUCKETFN_APP:-functions:app}}"
