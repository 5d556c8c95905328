#!/bin/sh
# Declarative provisioning of tenants on the control plane, idempotent: the Helm chart's
# provisioning Job and the compose set-up (docker/compose.yaml) both run it.
#
#   TENANTS              the tenants, whitespace-separated: slug[:plan[:status]] (plan pro, status
#                        active by default). A missing one is created; an existing one is moved to
#                        that plan and status. Tenants not named are left alone.
#   TENANT_NAMES_FILE    optional: lines "<slug> <display name>", used when a tenant is created
#   PLATFORM_IDENTITIES  platform identity certificates to issue once, e.g. "admin"
#   DATAPLANE_DIR        where the data-plane export goes (refreshed on every run)
#   CA_SECRETS_DIR       optional: each named tenant's CA as a Kubernetes Secret manifest, <slug>.yaml
#   TENANT_GATEWAY_DATA  the control plane's data dir (initialised with `tenant-gateway init`)
#   TENANT_GATEWAY_NATS  where NATS is (default: the URL recorded in the data dir)
#   TENANT_GATEWAY_CLI   the CLI (default: the image's /app/bin/tenant-gateway.js)
set -eu

cli=${TENANT_GATEWAY_CLI:-/app/bin/tenant-gateway.js}
tg() { node "$cli" "$@"; }
data=${TENANT_GATEWAY_DATA:-/data}
# One field of the JSON document on stdin, e.g. `json plan`.
json() { node -e 'let t = ""; process.stdin.on("data", (c) => (t += c)).on("end", () => process.stdout.write(String(JSON.parse(t)[process.argv[1]] ?? "")))' "$1"; }

if [ ! -f "$data/nats/operator.jwt" ]; then
  echo "error: $data is not an initialised control plane (no nats/operator.jwt): run tenant-gateway init there first" >&2
  exit 1
fi

for entry in ${TENANTS:-}; do
  slug=${entry%%:*}
  rest=${entry#"$slug"}
  rest=${rest#:}
  plan=${rest%%:*}
  status=${rest#"$plan"}
  status=${status#:}
  plan=${plan:-pro}
  status=${status:-active}
  case $status in active | suspended) ;; *) echo "error: tenant $slug: status must be active or suspended, not \"$status\"" >&2; exit 2 ;; esac

  if shown=$(tg tenant show "$slug" --json 2>/dev/null); then
    current_plan=$(printf '%s' "$shown" | json plan)
    current_status=$(printf '%s' "$shown" | json status)
    echo "tenant $slug: exists ($current_plan, $current_status)"
    [ "$current_plan" = "$plan" ] || tg tenant set-plan "$slug" "$plan"
    case $status:$current_status in
      active:suspended) tg tenant resume "$slug" ;;
      suspended:active) tg tenant suspend "$slug" ;;
    esac
  else
    case $shown in *'"unknown_tenant"'*) ;; *) printf '%s\n' "$shown" >&2; exit 1 ;; esac
    name=""
    if [ -n "${TENANT_NAMES_FILE:-}" ] && [ -f "$TENANT_NAMES_FILE" ]; then
      name=$(awk -v slug="$slug" '$1 == slug { $1 = ""; sub(/^ +/, ""); print; exit }' "$TENANT_NAMES_FILE")
    fi
    tg tenant create "$slug" --plan "$plan" ${name:+--name "$name"}
    [ "$status" = active ] || tg tenant suspend "$slug"
  fi
done

# Finishes interrupted creates and re-pushes whatever NATS lacks.
tg sync

for name in ${PLATFORM_IDENTITIES:-}; do
  if [ -f "$data/platform/identities/$name.pem" ]; then
    echo "platform identity $name: exists"
  else
    tg pki issue-platform "$name"
  fi
done

if [ -n "${CA_SECRETS_DIR:-}" ]; then
  mkdir -p "$CA_SECRETS_DIR"
  for entry in ${TENANTS:-}; do
    slug=${entry%%:*}
    (umask 077 && tg pki k8s-secret "$slug" > "$CA_SECRETS_DIR/$slug.yaml")
  done
fi

tg export dataplane "${DATAPLANE_DIR:?DATAPLANE_DIR names where the data-plane export goes}"
