#!/usr/bin/env bash
# Generates the platform PKI (root CA, platform CA, gateway certificate), a tenant CA for each
# --tenant (default: "default") and an agent-001/partition-1 edge certificate per tenant.
# A thin wrapper over the CLI: all certificate logic lives in `tenant-gateway pki`.
#
#   scripts/generate-certs.sh [--output-dir DIR] [--tenant SLUG]... [--hostname NAME]...
#   FORCE_REGENERATE=true scripts/generate-certs.sh   # re-create everything
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cli="${TENANT_GATEWAY_CLI:-$here/../bin/tenant-gateway.js}"
output_dir="${TENANT_GATEWAY_DATA:-./data}"
tenants=()
hostnames=()

usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --output-dir) output_dir="${2:?--output-dir needs a value}"; shift 2 ;;
    --tenant) tenants+=("${2:?--tenant needs a value}"); shift 2 ;;
    --hostname) hostnames+=(--hostname "${2:?--hostname needs a value}"); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "error: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
[ ${#tenants[@]} -gt 0 ] || tenants=(default)

force=()
if [ "${FORCE_REGENERATE:-false}" = "true" ]; then force=(--force); fi

"$cli" pki init --data-dir "$output_dir" ${hostnames[@]+"${hostnames[@]}"} ${force[@]+"${force[@]}"}
for slug in "${tenants[@]}"; do
  "$cli" pki tenant-ca "$slug" --data-dir "$output_dir" ${force[@]+"${force[@]}"}
  leaf="$output_dir/tenants/$slug/components/agent-001-partition-1.pem"
  if [ -f "$leaf" ] && [ ${#force[@]} -eq 0 ]; then
    echo "edge certificate agent-001.partition-1.$slug.serviceradar: exists"
  else
    "$cli" pki issue --tenant "$slug" --component agent-001 --partition partition-1 --data-dir "$output_dir"
  fi
done
