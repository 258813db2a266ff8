#!/usr/bin/env bash
# Install Prometheus, promtool, Alertmanager and amtool from Debian if they are missing. Idempotent:
# exits 0 at once when all are on PATH. Needs root (apt-get); exits 3 with a message when it cannot install.
set -euo pipefail

readonly PACKAGES=(prometheus prometheus-alertmanager)

have_all() {
    local cmd
    for cmd in prometheus promtool prometheus-alertmanager amtool; do
        command -v "$cmd" >/dev/null 2>&1 || return 1
    done
}

main() {
    if have_all; then
        exit 0
    fi
    if [[ "$(id -u)" -ne 0 ]]; then
        echo "install_prometheus: missing and not root; run: sudo apt-get install ${PACKAGES[*]}" >&2
        exit 3
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install_prometheus: apt-get not available; install the Debian packages ${PACKAGES[*]}" >&2
        exit 3
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >/dev/null 2>&1; then
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >/dev/null
    fi
    have_all || { echo "install_prometheus: installed but the commands are still not on PATH" >&2; exit 3; }
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
