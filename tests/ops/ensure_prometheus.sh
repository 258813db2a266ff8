#!/usr/bin/env bash
# Make `prometheus` and `promtool` available (Debian package `prometheus`). Idempotent: does
# nothing when both are on PATH. Installing needs root and apt-get; otherwise it says why and
# exits 1, and the tests that need Prometheus skip (never when CI=true).
set -euo pipefail

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
    exit 0
fi
if [[ "$(id -u)" -ne 0 ]]; then
    echo "ensure_prometheus: prometheus/promtool missing and not root: run 'sudo apt-get install -y prometheus'" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_prometheus: prometheus/promtool missing and apt-get is not available" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends prometheus >/dev/null
# The package may start a daemon where an init system runs; the tests start their own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
    systemctl stop prometheus || true
fi
command -v prometheus >/dev/null && command -v promtool >/dev/null
