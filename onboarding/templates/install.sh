#!/usr/bin/env bash
# Installs the ServiceRadar {{profile}} "{{component}}" of tenant {{tenant}} from this onboarding
# bundle (package {{package_id}}). Run it from anywhere; it uses the directory it sits in.
#
#   ./install.sh manual  [--prefix DIR]     copy the bundle to DIR (default {{install_dir}}), keys 0600,
#                                           and a nats CLI context with absolute paths
#   ./install.sh systemd [--prefix DIR] [--unit-dir DIR] [--no-start]
#                                           manual, plus a systemd unit serviceradar-{{name}}.service
#   ./install.sh docker  [--prefix DIR] [--dry-run]
#                                           manual, plus a container ({{image}}) with the bundle mounted
#
# The component reads config/config.yaml with the bundle directory as its working directory.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
mode="${1:-}"
[ $# -gt 0 ] && shift
prefix="{{install_dir}}"
unit_dir="/etc/systemd/system"
start=1
dry_run=0
image="${SERVICERADAR_IMAGE:-{{image}}}"

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }
case "$mode" in -h|--help) usage; exit 0 ;; esac

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="$2"; shift 2 ;;
    --unit-dir) unit_dir="$2"; shift 2 ;;
    --no-start) start=0; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done

install_files() {
  mkdir -p "$prefix"
  (cd "$here" && tar -cf - certs config README.md) | (cd "$prefix" && tar -xf -)
  chmod 0700 "$prefix/certs"
  chmod 0600 "$prefix/certs/component-key.pem"
  chmod 0644 "$prefix/certs/component.pem" "$prefix/certs/ca-chain.pem"
  # The nats CLI reads a context's paths as given: the installed copy names them absolutely.
  sed -e "s#\"certs/#\"$prefix/certs/#g" "$here/config/nats-context.json" > "$prefix/config/nats-context.json"
  echo "installed in $prefix"
  echo "try it: nats --context $prefix/config/nats-context.json pub {{probe_subject}} hello"
}

case "$mode" in
  manual)
    install_files
    ;;
  systemd)
    install_files
    mkdir -p "$unit_dir"
    cat > "$unit_dir/serviceradar-{{name}}.service" <<UNIT
[Unit]
Description=ServiceRadar {{profile}} {{component}} (tenant {{tenant}})
After=network-online.target
Wants=network-online.target

[Service]
WorkingDirectory=$prefix
ExecStart={{command}} --config config/config.yaml
Restart=on-failure
RestartSec=5

[Install]
WantedBy=multi-user.target
UNIT
    echo "systemd unit: $unit_dir/serviceradar-{{name}}.service"
    if [ "$start" = 1 ]; then
      systemctl daemon-reload
      systemctl enable --now "serviceradar-{{name}}.service"
    fi
    ;;
  docker)
    [ "$dry_run" = 1 ] || install_files
    cmd=(docker run -d --name "serviceradar-{{name}}" --restart unless-stopped -v "$prefix:/etc/serviceradar:ro" -w /etc/serviceradar "$image" --config config/config.yaml)
    if [ "$dry_run" = 1 ]; then
      printf '%q ' "${cmd[@]}"
      echo
    else
      "${cmd[@]}"
    fi
    ;;
  *)
    usage >&2
    exit 2
    ;;
esac
