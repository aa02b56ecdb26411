#!/usr/bin/env bash
# Helm, built from its Go module and cached, for the chart tests (helm lint and
# helm template on infra/helm/bucketfn), and the CRDs the rendered objects are
# validated against: KEDA's (ScaledObject, TriggerAuthentication) and the
# prometheus-operator's (ServiceMonitor), taken from their Go modules.
#   helm.sh install | status | path | crds
# Idempotent: install does nothing once both are cached. crds prints the
# directory holding the CRD files.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=env.sh
source "$(dirname "$0")/env.sh"

HELM_VERSION="${HELM_VERSION:-v3.22.0}"
HELM_BIN="$CACHE/helm/$HELM_VERSION/helm"
HELM_KUBERNETES_MINOR=37
KEDA_VERSION="${KEDA_VERSION:-v2.21.0}"
# The newest the Go module proxy serves of the repository's root module (the
# ones after it are refused, "not available"); its CRDs are v1 ServiceMonitors.
PROMETHEUS_OPERATOR_VERSION="${PROMETHEUS_OPERATOR_VERSION:-v0.85.0}"
CRDS="$CACHE/crds/keda-$KEDA_VERSION+prometheus-operator-$PROMETHEUS_OPERATOR_VERSION"
CRD_FILES=(keda.sh_scaledobjects.yaml keda.sh_triggerauthentications.yaml
  monitoring.coreos.com_servicemonitors.yaml)

installed() {
  [ -x "$HELM_BIN" ] || return 1
  local f
  for f in "${CRD_FILES[@]}"; do [ -f "$CRDS/$f" ] || return 1; done
}

# module_dir MODULE@VERSION: the module's source, downloaded into Go's module cache.
module_dir() {
  # From the cache directory: outside any module, so only the named one is fetched.
  (cd "$CACHE" && go mod download -json "$1") | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p'
}

fetch_crds() {
  local keda operator
  keda="$(module_dir "github.com/kedacore/keda/v2@$KEDA_VERSION")"
  operator="$(module_dir "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION")"
  if [ -z "$keda" ] || [ -z "$operator" ]; then log "could not download the CRDs' modules"; exit 1; fi
  mkdir -p "$CRDS"
  cp "$keda/config/crd/bases/keda.sh_scaledobjects.yaml" \
    "$keda/config/crd/bases/keda.sh_triggerauthentications.yaml" \
    "$operator/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml" "$CRDS/"
  chmod u+w "$CRDS"/*.yaml
}

install() {
  if installed; then return 0; fi
  command -v go >/dev/null || { log "Go is required to build Helm (go install)"; exit 1; }
  if [ ! -x "$HELM_BIN" ]; then build; fi
  fetch_crds
}

build() {
  log "building Helm $HELM_VERSION from source (first run only; cached in $CACHE)"
  mkdir -p "$(dirname "$HELM_BIN")"
  local start=$SECONDS
  # What Helm's Makefile links in: without it Helm says it is v3.22 of no commit
  # and templates and lints for Kubernetes 1.20, refusing a chart's kubeVersion
  # and missing newer deprecations. Helm v3.22.0 builds on client-go v0.37, so 1.37.
  local ldflags="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  local pkg
  for pkg in pkg/lint/rules pkg/chartutil; do
    ldflags+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$HELM_KUBERNETES_MINOR"
  done
  GOBIN="$(dirname "$HELM_BIN")" GOFLAGS="-trimpath" \
    go install -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  log "built in $((SECONDS - start)) s"
}

case "${1:-}" in
  install) install ;;
  status) if installed; then echo installed; else echo missing; fi ;;
  path) echo "$HELM_BIN" ;;
  crds) echo "$CRDS" ;;
  *) echo "usage: $0 install|status|path|crds" >&2; exit 2 ;;
esac
