#!/usr/bin/env bash
# Creates (or reports) one tenant's intermediate CA under the platform root.
# A thin wrapper over `tenant-gateway pki tenant-ca`.
#
#   scripts/generate-tenant-ca.sh <slug> [--output-dir DIR] [--validity-years N] [--json]
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cli="${TENANT_GATEWAY_CLI:-$here/../bin/tenant-gateway.js}"
output_dir="${TENANT_GATEWAY_DATA:-./data}"
slug=""
extra=()

usage() { sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --output-dir) output_dir="${2:?--output-dir needs a value}"; shift 2 ;;
    --validity-years) extra+=(--validity-years "${2:?--validity-years needs a value}"); shift 2 ;;
    --json) extra+=(--json); shift ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "error: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) [ -z "$slug" ] || { echo "error: only one slug, got $slug and $1" >&2; exit 2; }; slug="$1"; shift ;;
  esac
done
[ -n "$slug" ] || { echo "error: a tenant slug is required" >&2; usage >&2; exit 2; }

exec "$cli" pki tenant-ca "$slug" --data-dir "$output_dir" ${extra[@]+"${extra[@]}"}
