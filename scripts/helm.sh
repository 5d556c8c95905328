#!/usr/bin/env bash
# The helm the chart tests use, pinned and kept beside the other tools (never on PATH):
#   scripts/helm.sh install   go install helm into ~/.cache/tenant-gateway/helm-<version>/
#   scripts/helm.sh path      the binary's path (the tests read it; HELM_BIN overrides)
set -euo pipefail
HELM_VERSION=v3.22.0
cache="${TENANT_GATEWAY_TOOLS:-$HOME/.cache/tenant-gateway}"
dir="$cache/helm-$HELM_VERSION"

case "${1:-path}" in
  install)
    if [ ! -x "$dir/helm" ]; then
      GOBIN="$dir" go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
    fi
    echo "$dir/helm"
    ;;
  path) echo "$dir/helm" ;;
  *) echo "usage: $0 install|path" >&2; exit 2 ;;
esac
