#!/usr/bin/env bash
# deploy.sh: build, smoke-test, deploy, inspect and stop the mcp-desk compose stack.
#
#   ./deploy.sh build            build the image as $DEPLOY_IMAGE_REPO:$DEPLOY_TAG
#   ./deploy.sh deploy           start that tag, wait until healthy, roll back if it never is
#   ./deploy.sh test             smoke-test the running stack (health, MCP endpoint, scrape)
#   ./deploy.sh status           containers, /health and key metrics
#   ./deploy.sh logs [SERVICE]   recent logs (DEPLOY_LOG_FOLLOW=1 to follow)
#   ./deploy.sh stop             stop and remove the containers (volumes are kept)
#
# Configuration (environment): DEPLOY_COMPOSE_FILE, DEPLOY_ENV_FILE, DEPLOY_IMAGE_REPO, DEPLOY_TAG,
# DEPLOY_HEALTH_TIMEOUT, DEPLOY_HEALTH_INTERVAL, DEPLOY_STATE_DIR, DEPLOY_MCP_PORT,
# DEPLOY_SMOKE_API_KEY, DEPLOY_LOG_TAIL, DEPLOY_LOG_FOLLOW. See docs/docker.md.
# No .env and no keys file are needed: the first start creates an admin key and prints it once.
set -euo pipefail

readonly SERVICE="mcp-desk"
COMPOSE_FILE="${DEPLOY_COMPOSE_FILE:-docker-compose.yml}"
ENV_FILE="${DEPLOY_ENV_FILE:-.env}"
IMAGE_REPO="${DEPLOY_IMAGE_REPO:-mcp-desk}"
HEALTH_TIMEOUT="${DEPLOY_HEALTH_TIMEOUT:-120}"
HEALTH_INTERVAL="${DEPLOY_HEALTH_INTERVAL:-3}"
STATE_DIR="${DEPLOY_STATE_DIR:-.deploy}"
MCP_PORT="${DEPLOY_MCP_PORT:-8000}"
LOG_TAIL="${DEPLOY_LOG_TAIL:-200}"

# The HEALTHCHECK's probe, printing the body: the image has Python but no curl.
readonly HEALTH_PROBE="import os, sys, urllib.request as u, urllib.error as e
port = os.environ.get('MCP_DESK_HEALTH_PORT') or '3001'
path = sys.argv[1] if len(sys.argv) > 1 else '/health'
try:
    r = u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:' + port + path, timeout=4)
except e.HTTPError as err:
    r = err
sys.stdout.write(r.read().decode())
sys.exit(0 if r.status == 200 else 1)"

log() { printf '%s deploy: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() {
    printf '\n*** deploy: %s ***\n\n' "$*" >&2
    exit 1
}

usage() {
    sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

default_tag() {
    git rev-parse --short=12 HEAD 2>/dev/null || date -u +%Y%m%d%H%M%S
}

compose() {
    local args=(compose -f "$COMPOSE_FILE")
    if [[ -f "$ENV_FILE" ]]; then
        args+=(--env-file "$ENV_FILE")
    fi
    docker "${args[@]}" "$@"
}

# Run compose with the stack pointed at one image tag.
compose_with_image() {
    local image="$1"
    shift
    DEPLOY_IMAGE="$image" compose "$@"
}

require_commands() {
    local cmd
    for cmd in "$@"; do
        command -v "$cmd" >/dev/null 2>&1 || die "required command not found: $cmd"
    done
}

require_compose() {
    require_commands docker
    docker compose version >/dev/null 2>&1 || die "'docker compose' (Compose v2 plugin) is required"
    [[ -f "$COMPOSE_FILE" ]] || die "compose file not found: $COMPOSE_FILE"
}

preflight() {
    require_compose
    [[ -f "$ENV_FILE" ]] || log "no $ENV_FILE: using defaults (copy .env.example to $ENV_FILE to configure)"
    local out
    if ! out="$(compose config -q 2>&1)"; then
        printf '%s\n' "$out" >&2
        die "compose config failed for $COMPOSE_FILE: fix the file or $ENV_FILE first"
    fi
}

# A compose variable as compose sees it: the environment first, then the last NAME= line of the env file.
compose_var() {
    local name="$1" line
    if [[ -n "${!name:-}" ]]; then
        printf '%s\n' "${!name}"
        return
    fi
    [[ -f "$ENV_FILE" ]] || return 0
    line="$(grep -E "^${name}=" "$ENV_FILE" | tail -n 1 || true)"
    line="${line#*=}"
    line="${line%\"}"
    line="${line#\"}"
    printf '%s\n' "$line"
}

is_loopback() {
    case "$1" in
    127.* | localhost | ::1 | "[::1]") return 0 ;;
    *) return 1 ;;
    esac
}

# Grafana's default password must never be reachable beyond this machine (Grafana itself refuses too).
require_safe_bind() {
    local bind password
    bind="$(compose_var DEPLOY_BIND_ADDRESS)"
    bind="${bind:-127.0.0.1}"
    is_loopback "$bind" && return 0
    password="$(compose_var GRAFANA_ADMIN_PASSWORD)"
    if [[ -z "$password" || "$password" == "admin" ]]; then
        die "DEPLOY_BIND_ADDRESS=$bind publishes Grafana beyond this machine, but GRAFANA_ADMIN_PASSWORD is not set:
    set it in $ENV_FILE to a password of your own (e.g. openssl rand -base64 24), or bind to 127.0.0.1"
    fi
}

# The first start prints one admin key in a marked block; show it right after the deploy that made it.
show_first_key() {
    local block
    block="$(compose logs --no-color "$SERVICE" 2>/dev/null | grep -A 7 'FIRST START: ADMIN API KEY' || true)"
    if [[ -n "$block" ]]; then
        printf '\n%s\n\n' "$block" >&2
        log "keep this key now: it is not shown again (docker compose logs $SERVICE shows it while the container lives)"
    fi
}

current_tag() {
    if [[ -f "$STATE_DIR/current" ]]; then
        cat "$STATE_DIR/current"
    fi
}

record_tag() {
    local tag="$1" previous
    mkdir -p "$STATE_DIR"
    previous="$(current_tag)"
    if [[ -n "$previous" && "$previous" != "$tag" ]]; then
        printf '%s\n' "$previous" >"$STATE_DIR/previous"
    fi
    printf '%s\n' "$tag" >"$STATE_DIR/current"
}

container_id() {
    compose ps -q "$SERVICE" 2>/dev/null | head -n 1
}

container_health() {
    local id="$1"
    docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id" 2>/dev/null ||
        echo "missing"
}

# Poll the container's health until healthy (0), failed (1) or out of time (1).
wait_healthy() {
    local attempts=$((HEALTH_TIMEOUT / (HEALTH_INTERVAL > 0 ? HEALTH_INTERVAL : 1)))
    local i id state="unknown"
    ((attempts > 0)) || attempts=1
    for ((i = 1; i <= attempts; i++)); do
        id="$(container_id)"
        if [[ -n "$id" ]]; then
            state="$(container_health "$id")"
            case "$state" in
            healthy) return 0 ;;
            unhealthy | exited | dead | missing)
                log "$SERVICE is $state"
                return 1
                ;;
            esac
        fi
        sleep "$HEALTH_INTERVAL"
    done
    log "$SERVICE did not become healthy within ${HEALTH_TIMEOUT}s (last state: $state)"
    return 1
}

show_logs() {
    printf '\n----- last %s log lines of %s -----\n' "$LOG_TAIL" "$SERVICE" >&2
    compose logs --no-color --tail "$LOG_TAIL" "$SERVICE" >&2 || true
    printf '%s\n\n' '-----' >&2
}

start_tag() {
    local tag="$1"
    log "starting $IMAGE_REPO:$tag"
    compose_with_image "$IMAGE_REPO:$tag" up -d --no-build --remove-orphans
}

rollback() {
    local failed="$1" previous="$2"
    log "rolling back to $IMAGE_REPO:$previous"
    start_tag "$previous"
    if wait_healthy; then
        die "deploy of $IMAGE_REPO:$failed failed: $SERVICE never became healthy; rolled back to $previous, which is healthy"
    fi
    show_logs
    die "deploy failed AND rollback to $previous is unhealthy: the service is down"
}

cmd_build() {
    preflight
    local tag="${DEPLOY_TAG:-$(default_tag)}"
    log "building $IMAGE_REPO:$tag"
    docker build --pull=false -t "$IMAGE_REPO:$tag" -f Dockerfile .
    log "built $IMAGE_REPO:$tag"
}

cmd_deploy() {
    preflight
    require_safe_bind
    local tag="${DEPLOY_TAG:-$(default_tag)}" previous
    previous="$(current_tag)"
    docker image inspect "$IMAGE_REPO:$tag" >/dev/null 2>&1 || die "image $IMAGE_REPO:$tag not found: run ./deploy.sh build first"
    start_tag "$tag"
    if wait_healthy; then
        record_tag "$tag"
        log "$IMAGE_REPO:$tag is healthy"
        show_first_key
        cmd_status
        return 0
    fi
    show_logs
    if [[ -n "$previous" && "$previous" != "$tag" ]]; then
        rollback "$tag" "$previous"
    fi
    die "deploy of $IMAGE_REPO:$tag failed: $SERVICE never became healthy (no previous tag to roll back to)"
}

# Sum every sample of one metric in Prometheus exposition text read from stdin.
metric_sum() {
    awk -v name="$1" '$1 == name || index($1, name "{") == 1 { sum += $NF; seen = 1 }
        END { if (seen) printf "%g\n", sum; else print "n/a" }'
}

cmd_status() {
    require_compose
    compose ps
    local id health metrics
    id="$(container_id)"
    [[ -n "$id" ]] || die "$SERVICE is not running"
    printf '\n%s container health: %s\n' "$SERVICE" "$(container_health "$id")"
    if health="$(compose exec -T "$SERVICE" python -c "$HEALTH_PROBE" /health 2>/dev/null)"; then
        printf '/health: %s\n' "$health"
    else
        printf '/health: FAILING %s\n' "$health"
    fi
    metrics="$(compose exec -T "$SERVICE" python -c "$HEALTH_PROBE" /metrics 2>/dev/null || true)"
    printf '\nkey metrics\n'
    printf '  %-32s %s\n' "build" "$(grep -o 'mcp_desk_build_info{[^}]*}' <<<"$metrics" | head -n 1 || true)"
    local name
    for name in mcp_desk_tool_calls_total mcp_desk_permission_denied_total mcp_desk_rate_limited_total \
        mcp_desk_sessions_active mcp_desk_budget_used_ratio mcp_desk_security_alerts_total; do
        printf '  %-32s %s\n' "$name" "$(metric_sum "$name" <<<"$metrics")"
    done
}

cmd_test() {
    require_compose
    require_commands curl
    local id health code body
    id="$(container_id)"
    [[ -n "$id" ]] || die "$SERVICE is not running: ./deploy.sh deploy first"
    health="$(container_health "$id")"
    [[ "$health" == "healthy" ]] || die "smoke test: $SERVICE is $health"
    compose exec -T "$SERVICE" python -c "$HEALTH_PROBE" /health/ready >/dev/null || die "smoke test: /health/ready is not 200"
    log "smoke: container healthy, /health/ready 200"

    body='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"deploy-smoke","version":"1"}}}'
    local auth=()
    if [[ -n "${DEPLOY_SMOKE_API_KEY:-}" ]]; then
        auth=(-H "Authorization: Bearer $DEPLOY_SMOKE_API_KEY")
    fi
    code="$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 -X POST "http://127.0.0.1:$MCP_PORT/mcp" \
        -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
        "${auth[@]}" --data "$body")" || die "smoke test: MCP endpoint 127.0.0.1:$MCP_PORT unreachable"
    if [[ -n "${DEPLOY_SMOKE_API_KEY:-}" ]]; then
        [[ "$code" == "200" ]] || die "smoke test: initialize with the smoke key answered $code, expected 200"
    else
        [[ "$code" == "401" ]] || die "smoke test: initialize without a key answered $code, expected 401"
    fi
    log "smoke: POST /mcp initialize answered $code"

    local targets
    targets="$(compose exec -T prometheus wget -q -O - 'http://127.0.0.1:9090/api/v1/targets?state=active' 2>/dev/null || true)"
    grep -q '"health":"up"' <<<"$targets" || die "smoke test: Prometheus has no healthy scrape target yet"
    log "smoke: Prometheus scrapes $SERVICE"
    log "smoke test passed"
}

cmd_logs() {
    require_compose
    local follow=()
    if [[ "${DEPLOY_LOG_FOLLOW:-0}" == "1" ]]; then
        follow=(--follow)
    fi
    compose logs --no-color --tail "$LOG_TAIL" "${follow[@]}" "${1:-$SERVICE}"
}

cmd_stop() {
    require_compose
    log "stopping the stack (volumes are kept)"
    compose down --remove-orphans
}

main() {
    local command="${1:-}"
    shift || true
    case "$command" in
    build) cmd_build ;;
    deploy) cmd_deploy ;;
    test) cmd_test ;;
    status) cmd_status ;;
    logs) cmd_logs "$@" ;;
    stop) cmd_stop ;;
    -h | --help | help)
        usage
        ;;
    *)
        usage >&2
        exit 2
        ;;
    esac
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
