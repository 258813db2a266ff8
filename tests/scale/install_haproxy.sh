#!/usr/bin/env bash
# Install HAProxy from Debian if it is missing. Idempotent: exits 0 at once when `haproxy` is on
# PATH. Needs root (apt-get); exits 3 with a message when it cannot install.
set -euo pipefail

have_haproxy() { command -v haproxy >/dev/null 2>&1 || [[ -x /usr/sbin/haproxy ]]; }

main() {
    if have_haproxy; then
        exit 0
    fi
    if [[ "$(id -u)" -ne 0 ]]; then
        echo "install_haproxy: haproxy missing and not root; run: sudo apt-get install haproxy" >&2
        exit 3
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install_haproxy: apt-get not available; install the Debian package haproxy" >&2
        exit 3
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends haproxy >/dev/null 2>&1; then
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends haproxy >/dev/null
    fi
    have_haproxy || { echo "install_haproxy: installed but haproxy still not found" >&2; exit 3; }
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
