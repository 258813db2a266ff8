#!/usr/bin/env bash
# Install the pinned Node tooling used by the interop tests (Node 22, the conformance suite,
# the TypeScript SDK client, the Inspector CLI) from package-lock.json. Nothing is downloaded
# at test time. Re-runs only when package.json or package-lock.json changed.
set -euo pipefail
cd "$(dirname "$0")"
stamp=node_modules/.mcp-desk-installed
if [[ -f $stamp && $stamp -nt package.json && $stamp -nt package-lock.json ]]; then
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "tests/interop/install.sh: npm is required (Node >= 20); install Node.js and npm first" >&2
    exit 1
fi
npm ci --no-audit --no-fund --loglevel=error
node_modules/.bin/node --version >/dev/null
touch "$stamp"
