#!/usr/bin/env bash
# Install Prometheus and promtool from Debian if they are missing. Idempotent: exits 0 at once
# when both are on PATH. Needs root (apt-get); exits 3 with a message when it cannot install.
set -euo pipefail

have_all() { command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; }

main() {
    if have_all; then
        exit 0
    fi
    if [[ "$(id -u)" -ne 0 ]]; then
        echo "install_prometheus: prometheus/promtool missing and not root; run: sudo apt-get install prometheus" >&2
        exit 3
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install_prometheus: apt-get not available; install the Debian package prometheus" >&2
        exit 3
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1; then
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends prometheus >/dev/null
    fi
    have_all || { echo "install_prometheus: installed but prometheus/promtool still not on PATH" >&2; exit 3; }
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
