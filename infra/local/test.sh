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

# The console's browser tests drive Debian's Chromium, and a missing one fails them:
# install it first (a no-op once it is there).
"$here/chromium.sh" install || exit 1

"$@"
