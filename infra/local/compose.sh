#!/usr/bin/env bash
# compose-check: docker-compose.yml loaded by compose-go, the Compose
# specification's reference implementation (the loader `docker compose config`
# runs), built from infra/compose with the Go module proxy and cached. Debian's
# docker-compose package is Compose v1 (1.29), which predates the current spec.
#   compose.sh install | status | path | config [FILE]
# config prints the normalised project as JSON, or fails with compose-go's error.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=env.sh
source "$(dirname "$0")/env.sh"

SRC="$ROOT/infra/compose"
# Keyed on the sources, so an edit to them builds a new binary.
VERSION="$(cat "$SRC/go.mod" "$SRC/go.sum" "$SRC/main.go" | sha256sum | cut -c1-16)"
BIN="$CACHE/compose-check/$VERSION/compose-check"

installed() { [ -x "$BIN" ]; }

install() {
  if installed; then return 0; fi
  command -v go >/dev/null || { log "Go is required to build compose-check (go build)"; exit 1; }
  log "building compose-check ($VERSION) with compose-go (first run only; cached in $CACHE)"
  mkdir -p "$(dirname "$BIN")"
  local start=$SECONDS
  (cd "$SRC" && GOFLAGS="-trimpath" go build -o "$BIN" .)
  log "built in $((SECONDS - start)) s"
}

case "${1:-}" in
  install) install ;;
  status) if installed; then echo installed; else echo missing; fi ;;
  path) echo "$BIN" ;;
  config) install; "$BIN" "${2:-$ROOT/docker-compose.yml}" ;;
  *) echo "usage: $0 install|status|path|config [FILE]" >&2; exit 2 ;;
esac
