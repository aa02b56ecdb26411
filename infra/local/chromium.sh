#!/usr/bin/env bash
# Chromium from Debian's packages, for the console's browser tests: Playwright drives
# it by path (its own browser download cannot work on these machines).
#   chromium.sh install | status | path
# Idempotent: install does nothing when the browser is there. BUCKETFN_CHROMIUM names
# another binary (the tests read the same variable).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=env.sh
source "$(dirname "$0")/env.sh"

BIN="${BUCKETFN_CHROMIUM:-/usr/bin/chromium}"

installed() { [ -x "$BIN" ]; }

install() {
  if installed; then return 0; fi
  if [ -n "${BUCKETFN_CHROMIUM:-}" ]; then
    log "BUCKETFN_CHROMIUM=$BIN is not an executable; install it or unset the variable"
    exit 1
  fi
  log "installing Debian's chromium (for the console's browser tests)"
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
  installed || { log "apt-get installed chromium, but $BIN is not there"; exit 1; }
  log "installed $("$BIN" --version 2>/dev/null || echo chromium)"
}

case "${1:-}" in
  install) install ;;
  status) if installed; then echo installed; else echo missing; fi ;;
  path) echo "$BIN" ;;
  *) echo "usage: $0 install|status|path" >&2; exit 2 ;;
esac
