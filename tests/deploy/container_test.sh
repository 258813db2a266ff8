#!/usr/bin/env bash
# `make container-test`: build the real image with buildah and run it with podman (no Docker
# engine needed). Opt-in, root only, about 2 minutes plus apt. Runs the image as compose does on a
# fresh clone (a new data volume, no keys file) and checks: the image builds from the lock and has
# its labels; runs as uid 10001 on a read-only root with /data writable; its own HEALTHCHECK passes
# and /health is healthy; the first start prints one admin key, which opens /mcp while no key gets
# 401; `podman stop` (SIGTERM) ends it with exit code 0; a restart on the same volume prints no new
# key; and the README's `docker run -i ... stdio` entry answers on stdin/stdout.
set -euo pipefail

cd "$(dirname "$0")/../.."
IMAGE="${CT_IMAGE:-mcp-desk:container-test}"
NAME="${CT_NAME:-mcp-desk-container-test}"
MCP_PORT="${CT_MCP_PORT:-18000}"
HEALTH_PORT="${CT_HEALTH_PORT:-13001}"
VOLUME="${CT_VOLUME:-mcp-desk-ct-data}"
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
    "${PODMAN[@]}" volume rm -f "$VOLUME" >/dev/null 2>&1 || true
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

check_labels() {
    local label value
    for label in org.opencontainers.image.source org.opencontainers.image.version io.modelcontextprotocol.server.name; do
        value="$("${PODMAN[@]}" image inspect --format "{{index .Config.Labels \"$label\"}}" "$IMAGE")"
        [[ -n "$value" && "$value" != "<no value>" ]] || fail "label $label missing"
    done
    say "labels present"
}

# What compose runs: the image's own command and environment, a named volume on /data, no keys file.
start() {
    say "podman run --read-only $IMAGE on volume $VOLUME (loopback ports $MCP_PORT/$HEALTH_PORT)"
    "${PODMAN[@]}" rm -f "$NAME" >/dev/null 2>&1 || true
    "${PODMAN[@]}" run -d --name "$NAME" --network host --read-only --tmpfs /tmp "${LIMITS[@]}" \
        -v "$VOLUME:/data" \
        -e MCP_DESK_HOST=127.0.0.1 -e MCP_DESK_PORT="$MCP_PORT" \
        -e MCP_DESK_HEALTH_HOST=127.0.0.1 -e MCP_DESK_HEALTH_PORT="$HEALTH_PORT" \
        -e MCP_DESK_ALLOWED_HOSTS="[\"127.0.0.1:$MCP_PORT\"]" \
        -e MCP_DESK_ALLOWED_ORIGINS="[\"http://127.0.0.1:$MCP_PORT\"]" \
        "$IMAGE" >/dev/null || fail "podman run"
}

printed_keys() {
    "${PODMAN[@]}" logs "$NAME" 2>&1 | sed -n 's/^  key: *\(mcpd_[^ ]*\)$/\1/p'
}

initialize_status() {
    local body='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"ct","version":"1"}}}'
    curl -sS -o /dev/null -w '%{http_code}' --max-time 10 -X POST "http://127.0.0.1:$MCP_PORT/mcp" \
        -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' "$@" --data "$body"
}

check_first_key() {
    local keys
    keys="$(printed_keys)"
    [[ "$(wc -l <<<"$keys")" == "1" && "$keys" == mcpd_* ]] || fail "expected one admin key in the log, found: $keys"
    [[ "$(initialize_status -H "Authorization: Bearer $keys")" == "200" ]] || fail "the printed key is refused"
    [[ "$(initialize_status)" == "401" ]] || fail "a request without a key is not refused with 401"
    say "one admin key printed; it opens /mcp, no key gets 401"
}

check_health() {
    curl -sS --max-time 5 "http://127.0.0.1:$HEALTH_PORT/health" | python3 -c \
        'import json, sys; h = json.load(sys.stdin); sys.exit(0 if h["status"] == "healthy" else h)' ||
        fail "/health is not healthy"
    say "/health: healthy (sandbox mode chosen, not degraded)"
}

check_restart() {
    start
    wait_healthy
    [[ -z "$(printed_keys)" ]] || fail "a restart printed a new key"
    say "restart on the same volume: no new key"
}

check_stdio_entry() {
    local init='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"ct","version":"1"}}}'
    printf '%s\n' "$init" | "${PODMAN[@]}" run -i --rm --network none "${LIMITS[@]}" -v "$VOLUME:/data" "$IMAGE" stdio \
        2>/dev/null | grep -q '"serverInfo"' || fail "docker run -i ... stdio did not answer initialize"
    say "the README's docker run -i entry answers on stdio"
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
    if "${PODMAN[@]}" exec "$NAME" python -c "open('/opt/probe', 'w')" 2>/dev/null; then
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
    check_labels
    "${PODMAN[@]}" volume rm -f "$VOLUME" >/dev/null 2>&1 || true
    start
    wait_healthy
    check_health
    check_first_key
    check_contract
    stop_cleanly
    check_restart
    stop_cleanly
    check_stdio_entry
    say "PASSED"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
