#!/usr/bin/env bats
# deploy.sh against a stub `docker` that logs calls and plays back health sequences.

setup() {
    REPO="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
    WORK="$BATS_TEST_TMPDIR"
    export STUB_LOG="$WORK/docker.log"
    export PATH="$REPO/tests/deploy/stub:$PATH"
    export DEPLOY_COMPOSE_FILE="$REPO/docker-compose.yml"
    export DEPLOY_ENV_FILE="$WORK/.env"
    export DEPLOY_STATE_DIR="$WORK/state"
    export DEPLOY_HEALTH_TIMEOUT=5
    export DEPLOY_HEALTH_INTERVAL=0
    export DEPLOY_TAG=new
    : >"$STUB_LOG"
    : >"$DEPLOY_ENV_FILE"
    unset STUB_HEALTH_SEQ STUB_CONFIG_RC STUB_NO_IMAGE STUB_NO_COMPOSE STUB_NOT_RUNNING STUB_FIRST_KEY DEPLOY_SMOKE_API_KEY
    unset DEPLOY_BIND_ADDRESS GRAFANA_ADMIN_PASSWORD
}

health_sequence() {
    export STUB_HEALTH_SEQ="$WORK/health"
    printf '%s\n' "$@" >"$STUB_HEALTH_SEQ"
}

@test "deploy waits through starting until healthy and records the tag" {
    health_sequence starting starting healthy
    run ./deploy.sh deploy
    [ "$status" -eq 0 ]
    grep -q 'compose .*config -q' "$STUB_LOG"
    grep -q 'up -d --no-build --remove-orphans \[DEPLOY_IMAGE=mcp-desk:new\]' "$STUB_LOG"
    # three polls, then one more for the status report printed after a good deploy
    [ "$(grep -c '^inspect' "$STUB_LOG")" -eq 4 ]
    [ "$(cat "$DEPLOY_STATE_DIR/current")" = "new" ]
    [[ "$output" == *"mcp-desk:new is healthy"* ]]
}

@test "a second healthy deploy keeps the first tag as the rollback target" {
    mkdir -p "$DEPLOY_STATE_DIR" && echo old >"$DEPLOY_STATE_DIR/current"
    run ./deploy.sh deploy
    [ "$status" -eq 0 ]
    [ "$(cat "$DEPLOY_STATE_DIR/current")" = "new" ]
    [ "$(cat "$DEPLOY_STATE_DIR/previous")" = "old" ]
}

@test "an unhealthy new tag is rolled back to the previous tag and the deploy fails loudly with logs" {
    mkdir -p "$DEPLOY_STATE_DIR" && echo old >"$DEPLOY_STATE_DIR/current"
    health_sequence starting unhealthy healthy
    run ./deploy.sh deploy
    [ "$status" -ne 0 ]
    grep -q 'up -d .*\[DEPLOY_IMAGE=mcp-desk:new\]' "$STUB_LOG"
    grep -q 'up -d .*\[DEPLOY_IMAGE=mcp-desk:old\]' "$STUB_LOG"
    [ "$(grep -n 'DEPLOY_IMAGE=mcp-desk:old' "$STUB_LOG" | cut -d: -f1)" -gt "$(grep -n 'DEPLOY_IMAGE=mcp-desk:new' "$STUB_LOG" | head -n 1 | cut -d: -f1)" ]
    [[ "$output" == *"stub log line: server_started"* ]]
    [[ "$output" == *"*** deploy: deploy of mcp-desk:new failed"*"rolled back to old"* ]]
    [ "$(cat "$DEPLOY_STATE_DIR/current")" = "old" ]
}

@test "a failed rollback says the service is down" {
    mkdir -p "$DEPLOY_STATE_DIR" && echo old >"$DEPLOY_STATE_DIR/current"
    health_sequence unhealthy
    run ./deploy.sh deploy
    [ "$status" -ne 0 ]
    [[ "$output" == *"rollback to old is unhealthy: the service is down"* ]]
}

@test "a deploy that never becomes healthy times out and fails without a previous tag" {
    health_sequence starting
    run ./deploy.sh deploy
    [ "$status" -ne 0 ]
    [[ "$output" == *"did not become healthy within 5s"* ]]
    [[ "$output" == *"no previous tag to roll back to"* ]]
    [[ "$output" == *"stub log line"* ]]
    [ ! -f "$DEPLOY_STATE_DIR/current" ]
}

@test "a container that exits is reported at once" {
    health_sequence exited
    run ./deploy.sh deploy
    [ "$status" -ne 0 ]
    [ "$(grep -c '^inspect' "$STUB_LOG")" -eq 1 ]
    [[ "$output" == *"mcp-desk is exited"* ]]
}

@test "a failing compose config stops before anything starts" {
    export STUB_CONFIG_RC=15
    run ./deploy.sh deploy
    [ "$status" -ne 0 ]
    [[ "$output" == *"compose config failed"* ]]
    [[ "$output" == *"invalid compose project (stub)"* ]]
    ! grep -q ' up ' "$STUB_LOG"
}

@test "deploy needs no env file and no keys file, and shows the first start's admin key" {
    rm "$DEPLOY_ENV_FILE"
    export STUB_FIRST_KEY=1
    run ./deploy.sh deploy
    [ "$status" -eq 0 ]
    [[ "$output" == *"no $DEPLOY_ENV_FILE: using defaults"* ]]
    [[ "$output" == *"FIRST START: ADMIN API KEY"*"mcpd_0123456789ab_stub"* ]]
    [[ "$output" == *"keep this key now"* ]]
    grep -q ' up -d ' "$STUB_LOG"
}

@test "deploy refuses a public bind address without the operator's Grafana password" {
    echo "DEPLOY_BIND_ADDRESS=0.0.0.0" >"$DEPLOY_ENV_FILE"
    run ./deploy.sh deploy
    [ "$status" -ne 0 ]
    [[ "$output" == *"DEPLOY_BIND_ADDRESS=0.0.0.0"*"GRAFANA_ADMIN_PASSWORD is not set"* ]]
    ! grep -q ' up ' "$STUB_LOG"
    export GRAFANA_ADMIN_PASSWORD=admin
    run ./deploy.sh deploy
    [ "$status" -ne 0 ]
    [[ "$output" == *"GRAFANA_ADMIN_PASSWORD is not set"* ]]
}

@test "deploy accepts a public bind address with the operator's own Grafana password" {
    printf 'DEPLOY_BIND_ADDRESS=192.0.2.10\nGRAFANA_ADMIN_PASSWORD="my-own-password"\n' >"$DEPLOY_ENV_FILE"
    run ./deploy.sh deploy
    [ "$status" -eq 0 ]
    grep -q ' up -d ' "$STUB_LOG"
    [[ "$output" != *"FIRST START"* ]]
}

@test "deploy refuses an image that was never built" {
    export STUB_NO_IMAGE=1
    run ./deploy.sh deploy
    [ "$status" -ne 0 ]
    [[ "$output" == *"run ./deploy.sh build first"* ]]
}

@test "a missing docker binary is a clear requirement error" {
    run env PATH="/nonexistent" /bin/bash ./deploy.sh status
    [ "$status" -ne 0 ]
    [[ "$output" == *"required command not found: docker"* ]]
}

@test "a docker without the compose plugin is refused" {
    export STUB_NO_COMPOSE=1
    run ./deploy.sh status
    [ "$status" -ne 0 ]
    [[ "$output" == *"Compose v2 plugin"* ]]
}

@test "build tags the image with the configured repository and tag" {
    DEPLOY_IMAGE_REPO=registry.example/desk run ./deploy.sh build
    [ "$status" -eq 0 ]
    grep -q '^build --pull=false -t registry.example/desk:new -f Dockerfile .' "$STUB_LOG"
}

@test "status shows container health, /health and key metrics" {
    run ./deploy.sh status
    [ "$status" -eq 0 ]
    [[ "$output" == *"container health: healthy"* ]]
    [[ "$output" == *'/health: {"status":"healthy"'* ]]
    [[ "$output" == *"mcp_desk_tool_calls_total"*"9"* ]]
    [[ "$output" == *"mcp_desk_sessions_active"*"3"* ]]
    [[ "$output" == *'mcp_desk_build_info{version="0.1.0"}'* ]]
}

@test "status of a stopped stack fails" {
    export STUB_NOT_RUNNING=1
    run ./deploy.sh status
    [ "$status" -ne 0 ]
    [[ "$output" == *"mcp-desk is not running"* ]]
}

@test "the smoke test checks health, the MCP endpoint and the scrape" {
    curl() { echo 401; }
    export -f curl
    run ./deploy.sh test
    [ "$status" -eq 0 ]
    grep -q 'exec -T mcp-desk python -c .*/health/ready' "$STUB_LOG"
    grep -q 'exec -T prometheus wget' "$STUB_LOG"
    [[ "$output" == *"smoke test passed"* ]]
}

@test "the smoke test fails when the MCP endpoint answers without auth" {
    curl() { echo 200; }
    export -f curl
    run ./deploy.sh test
    [ "$status" -ne 0 ]
    [[ "$output" == *"expected 401"* ]]
}

@test "logs passes the tail length and service to compose" {
    DEPLOY_LOG_TAIL=50 run ./deploy.sh logs grafana
    [ "$status" -eq 0 ]
    grep -q 'logs --no-color --tail 50 grafana' "$STUB_LOG"
}

@test "stop brings the stack down and keeps volumes" {
    run ./deploy.sh stop
    [ "$status" -eq 0 ]
    grep -q 'compose .* down --remove-orphans$' "$STUB_LOG"
    # a whole word: the temporary directory's random name may itself contain "-v"
    ! grep -qE -- ' (-v|--volumes)( |$)' <(grep ' down' "$STUB_LOG")
}

@test "an unknown command prints usage and exits 2" {
    run ./deploy.sh launch
    [ "$status" -eq 2 ]
    [[ "$output" == *"./deploy.sh deploy"* ]]
}

@test "sourcing the script defines functions without running main" {
    run bash -c "source ./deploy.sh && declare -F cmd_deploy && echo sourced"
    [ "$status" -eq 0 ]
    [[ "$output" == *"sourced"* ]]
    [ ! -s "$STUB_LOG" ]
}
