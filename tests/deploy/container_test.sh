#!/usr/bin/env bash
# `make container-test`: build the real image with buildah and run it with podman (no Docker
# engine needed; OPS-CHECKS.md). Opt-in, root only, about 2 minutes plus apt. Checks: the image
# builds from the lock, runs as uid 10001 on a read-only root with /data writable, its own
# HEALTHCHECK passes, and `podman stop` (SIGTERM) ends it with exit code 0.
set -euo pipefail

cd "$(dirname "$0")/../.."
IMAGE="${CT_IMAGE:-mcp-desk:container-test}"
NAME="${CT_NAME:-mcp-desk-container-test}"
MCP_PORT="${CT_MCP_PORT:-18000}"
HEALTH_PORT="${CT_HEALTH_PORT:-13001}"
ROOTFS_CACHE="${CT_ROOTFS_CACHE:-/var/tmp/mcp-desk-ct-rootfs}"
WORK="$(mktemp -d /var/tmp/mcp-desk-ct-XXXXXX)"
BASE="$(awk 'toupper($1) == "FROM" { print $2; exit }' Dockerfile)"
PODMAN=(podman --storage-driver vfs --runtime runc --cgroup-manager cgroupfs)
# This machine's rlimits cannot be raised inside the runtime: pin them below the host's.
LIMITS=(--ulimit nofile=1024:1024 --ulimit nproc=4096:4096)
BUILDAH=(buildah --storage-driver vfs)

say() { printf '\n== container-test: %s\n' "$*"; }
fail() {
    printf '\n*** container-test FAILED: %s ***\n' "$*" >&2
    "${PODMAN[@]}" logs "$NAME" 2>&1 | tail -n 60 >&2 || true
    exit 1
}
cleanup() {
    "${PODMAN[@]}" rm -f "$NAME" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

install_tools() {
    local missing=()
    local cmd
    for cmd in buildah podman runc debootstrap newuidmap; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
    done
    ((${#missing[@]} == 0)) && return 0
    [[ "$(id -u)" -eq 0 ]] || fail "missing ${missing[*]}: run as root (apt-get install buildah podman runc debootstrap uidmap)"
    say "installing buildah podman runc debootstrap uidmap"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq buildah podman runc debootstrap uidmap >/dev/null
}

# No registry is reachable: a Debian bookworm rootfs with Python 3.11 stands in for the base tag.
ensure_base() {
    if "${PODMAN[@]}" image exists "docker.io/library/$BASE"; then
        return 0
    fi
    if [[ ! -x "$ROOTFS_CACHE/usr/bin/python3" ]]; then
        say "debootstrap a stand-in for $BASE"
        rm -rf "$ROOTFS_CACHE"
        debootstrap --variant=minbase \
            --include=python3,python3-pip,python3-venv,python-is-python3,ca-certificates \
            bookworm "$ROOTFS_CACHE" >/dev/null
    fi
    tar -C "$ROOTFS_CACHE" -c . | "${PODMAN[@]}" import - "docker.io/library/$BASE" >/dev/null
}

build() {
    say "buildah bud -t $IMAGE"
    "${BUILDAH[@]}" bud --format docker --isolation chroot --pull=never \
        -v /etc/ssl/certs:/etc/ssl/certs:ro -t "$IMAGE" . || fail "image build"
}

make_keys() {
    mkdir -p "$WORK/secrets"
    "${PODMAN[@]}" run --rm --network host "${LIMITS[@]}" -e MCP_DESK_ENVIRONMENT=development "$IMAGE" \
        keys create --principal ops --role admin --json >"$WORK/key.json" || fail "keys create"
    python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["line"])' "$WORK/key.json" >"$WORK/secrets/api_keys"
    chmod 0644 "$WORK/secrets/api_keys"
}

start() {
    say "podman run --read-only $IMAGE (loopback ports $MCP_PORT/$HEALTH_PORT)"
    "${PODMAN[@]}" run -d --name "$NAME" --network host --read-only --tmpfs /tmp "${LIMITS[@]}" \
        -v "$WORK/secrets/api_keys:/run/secrets/mcp-desk-keys:ro" \
        -e MCP_DESK_API_KEYS_FILE=/run/secrets/mcp-desk-keys \
        -e MCP_DESK_HOST=127.0.0.1 -e MCP_DESK_PORT="$MCP_PORT" \
        -e MCP_DESK_HEALTH_HOST=127.0.0.1 -e MCP_DESK_HEALTH_PORT="$HEALTH_PORT" \
        -e MCP_DESK_ALLOWED_HOSTS="[\"127.0.0.1:$MCP_PORT\"]" \
        -e MCP_DESK_ALLOWED_ORIGINS="[\"http://127.0.0.1:$MCP_PORT\"]" \
        "$IMAGE" >/dev/null || fail "podman run"
}

wait_healthy() {
    local i
    for ((i = 0; i < 60; i++)); do
        if "${PODMAN[@]}" healthcheck run "$NAME" >/dev/null 2>&1; then
            say "the image's HEALTHCHECK passes"
            return 0
        fi
        [[ "$("${PODMAN[@]}" inspect --format '{{.State.Running}}' "$NAME")" == "true" ]] || fail "container exited"
        sleep 1
    done
    fail "HEALTHCHECK never passed"
}

check_contract() {
    [[ "$("${PODMAN[@]}" exec "$NAME" id -u)" == "10001" ]] || fail "not uid 10001"
    if "${PODMAN[@]}" exec "$NAME" python -c "open('/app/probe', 'w')" 2>/dev/null; then
        fail "root filesystem is writable"
    fi
    "${PODMAN[@]}" exec "$NAME" python -c "import os; assert os.path.exists('/data/mcp-desk.db')" ||
        fail "no database in /data"
    say "uid 10001, read-only root, database in /data"
}

stop_cleanly() {
    "${PODMAN[@]}" stop -t 45 "$NAME" >/dev/null
    local code
    code="$("${PODMAN[@]}" inspect --format '{{.State.ExitCode}}' "$NAME")"
    [[ "$code" == "0" ]] || fail "stop (SIGTERM) ended with exit code $code, expected 0"
    say "SIGTERM: exit 0"
}

main() {
    install_tools
    ensure_base
    build
    make_keys
    start
    wait_healthy
    check_contract
    stop_cleanly
    say "PASSED"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
