#!/bin/sh
# Alertmanager's entrypoint in the compose stack. Alertmanager does not read environment variables
# in its config, so with ALERTMANAGER_WEBHOOK_URL set this renders alertmanager-webhook.yml with the
# URL into $TMPDIR (a tmpfs) and starts on that; without it, on alertmanager.yml (alerts kept, no
# receiver). `exec`: Alertmanager itself receives SIGTERM.
set -eu

here="$(dirname "$0")"
config="$here/alertmanager.yml"
url="${ALERTMANAGER_WEBHOOK_URL:-}"

if [ -n "$url" ]; then
    case "$url" in
    http://* | https://*) ;;
    *)
        echo "alertmanager: ALERTMANAGER_WEBHOOK_URL must start with http:// or https://" >&2
        exit 78
        ;;
    esac
    case "$url" in
    *[\"\\\ \	]*)
        echo "alertmanager: ALERTMANAGER_WEBHOOK_URL must not contain quotes, backslashes or spaces" >&2
        exit 78
        ;;
    esac
    config="${TMPDIR:-/tmp}/alertmanager.yml"
    while IFS= read -r line; do
        case "$line" in
        *__ALERTMANAGER_WEBHOOK_URL__*) printf '%s"%s"\n' "${line%%__ALERTMANAGER_WEBHOOK_URL__*}" "$url" ;;
        *) printf '%s\n' "$line" ;;
        esac
    done <"$here/alertmanager-webhook.yml" >"$config"
    echo "alertmanager: posting alerts to the webhook from ALERTMANAGER_WEBHOOK_URL" >&2
else
    echo "alertmanager: no ALERTMANAGER_WEBHOOK_URL: alerts are kept and shown in Alertmanager only" >&2
fi

exec alertmanager \
    --config.file="$config" \
    --storage.path=/alertmanager \
    --web.listen-address=0.0.0.0:9093 \
    --cluster.listen-address= \
    "$@"
