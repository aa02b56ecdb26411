#!/usr/bin/env bash
# Run pytest with real MinIO and RabbitMQ: start what is not running, stop
# afterwards only what this script started.
#   test.sh PYTEST [ARGS...]
set -uo pipefail
here="$(dirname "$0")"
# shellcheck source-path=SCRIPTDIR source=env.sh
source "$here/env.sh"

started=()
cleanup() {
  for s in "${started[@]}"; do "$here/$s.sh" stop || true; done
}
trap cleanup EXIT

for s in rabbitmq minio; do
  if [ "$("$here/$s.sh" status)" != running ]; then
    "$here/$s.sh" start || exit 1
    started+=("$s")
  fi
done

# MinIO publishes as the broker user `bucketfn init` creates, as under `make up`:
# run it once, so that user (and the default deployment's buckets, rules and
# identities) exist before any test uploads a file.
"$here/init.sh" >/dev/null || exit 1

# The console's browser tests drive Debian's Chromium, and a missing one fails them:
# install it first (a no-op once it is there).
"$here/chromium.sh" install || exit 1

# The chart tests run Helm, and the compose test runs compose-go's loader, both
# built from their Go modules and cached (no-ops once built; Helm's first build
# is the long one).
"$here/compose.sh" install || exit 1
"$here/helm.sh" install || exit 1

"$@"
