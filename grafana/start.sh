#!/bin/sh
# Grafana's entrypoint in the compose stack: refuse to publish Grafana beyond this machine while it
# still has the default admin password, then hand over to the image's own entrypoint (/run.sh).
# Compose passes DEPLOY_BIND_ADDRESS and GRAFANA_ADMIN_PASSWORD_SET (non-empty when the operator set
# GRAFANA_ADMIN_PASSWORD). `exec`: Grafana itself receives SIGTERM.
set -eu

bind="${DEPLOY_BIND_ADDRESS:-127.0.0.1}"
case "$bind" in
127.* | localhost | ::1 | "[::1]") ;;
*)
    if [ -z "${GRAFANA_ADMIN_PASSWORD_SET:-}" ] || [ "${GF_SECURITY_ADMIN_PASSWORD:-admin}" = "admin" ]; then
        echo "grafana: refusing to start: DEPLOY_BIND_ADDRESS=$bind publishes Grafana beyond this machine" >&2
        echo "grafana: while its admin password is the default. Set GRAFANA_ADMIN_PASSWORD in .env to a" >&2
        echo "grafana: password of your own (or keep DEPLOY_BIND_ADDRESS=127.0.0.1), then run compose again." >&2
        exit 78
    fi
    ;;
esac

exec /run.sh "$@"
