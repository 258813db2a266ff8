"""The sidecar: /health statuses and codes, liveness, readiness through the drain, /metrics, uvicorn."""

from __future__ import annotations

import io
import json
import logging
import signal
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import anyio
import httpx
import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families

from mcp_desk.health import CheckResult, HealthCheck, budget_check, sandbox_check, storage_check
from mcp_desk.http import serve_sidecar, sidecar_app
from mcp_desk.lifecycle import Lifecycle
from mcp_desk.logging import configure_logging
from mcp_desk.metrics import Metrics

pytestmark = pytest.mark.anyio

VERSION = "0.1.0"


class ManualClock:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def storage_probe(directory: Path) -> HealthCheck:
    async def probe() -> None:
        await anyio.Path(directory / "probe").write_text("ok")
        await anyio.Path(directory / "probe").read_text()

    return storage_check(probe)


def make_metrics() -> Metrics:
    return Metrics(version=VERSION, tools=["create_note", "get_note"], transports=["http"])


@pytest.fixture
def lifecycle() -> Lifecycle:
    lifecycle = Lifecycle()
    lifecycle.mark_ready()
    return lifecycle


async def client_for(
    checks: Sequence[HealthCheck],
    lifecycle: Lifecycle,
    metrics: Metrics | None = None,
    clock: ManualClock | None = None,
) -> httpx.AsyncClient:
    app = sidecar_app(
        metrics=metrics or make_metrics(),
        lifecycle=lifecycle,
        checks=checks,
        version=VERSION,
        clock=clock or ManualClock(),
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sidecar")


async def get(checks: Sequence[HealthCheck], lifecycle: Lifecycle, path: str = "/health") -> httpx.Response:
    async with await client_for(checks, lifecycle) as client:
        return await client.get(path)


async def test_all_checks_ok_is_healthy_200_with_the_documented_shape(tmp_path: Path, lifecycle: Lifecycle) -> None:
    clock = ManualClock()
    async with await client_for([storage_probe(tmp_path)], lifecycle, clock=clock) as client:
        clock.now += 12.5
        response = await client.get("/health")

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {
        "status": "healthy",
        "checks": {"storage": {"status": "ok", "detail": "write/read probe passed"}},
        "version": VERSION,
        "uptime_seconds": 12.5,
        "timestamp": "2027-01-15T08:00:12.500000Z",
    }


async def test_a_degraded_sandbox_is_degraded_200_and_readiness_stays_200(tmp_path: Path, lifecycle: Lifecycle) -> None:
    checks = [storage_probe(tmp_path), sandbox_check(lambda: "rlimits")]

    health = await get(checks, lifecycle)
    ready = await get(checks, lifecycle, "/health/ready")

    assert (health.status_code, health.json()["status"]) == (200, "degraded")
    assert health.json()["checks"]["sandbox"] == {"status": "warn", "detail": "isolation: rlimits"}
    assert ready.status_code == 200


async def test_budget_at_the_threshold_is_degraded_and_spent_is_unhealthy_503(lifecycle: Lifecycle) -> None:
    near = await get([budget_check(lambda: 0.85)], lifecycle)
    spent = await get([budget_check(lambda: 1.0)], lifecycle)

    assert (near.status_code, near.json()["status"]) == (200, "degraded")
    assert (spent.status_code, spent.json()["status"]) == (503, "unhealthy")


async def test_unwritable_storage_is_unhealthy_503_and_leaks_no_internal_text(
    tmp_path: Path, lifecycle: Lifecycle
) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")

    response = await get([storage_probe(not_a_dir)], lifecycle)

    assert response.status_code == 503
    assert response.json()["checks"]["storage"] == {"status": "fail", "detail": "write/read probe failed"}
    for leaked in (str(tmp_path), "Errno", "NotADirectory", "python", "starlette", "sqlite"):
        assert leaked.lower() not in response.text.lower()


async def test_a_hanging_check_is_reported_as_timed_out(lifecycle: Lifecycle) -> None:
    async def hang() -> CheckResult:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    with anyio.fail_after(5):
        response = await get([HealthCheck(name="storage", probe=hang, timeout_seconds=0.01)], lifecycle)

    assert response.status_code == 503
    assert response.json()["checks"]["storage"] == {"status": "fail", "detail": "timed out"}


async def test_liveness_is_200_in_every_state() -> None:
    lifecycle = Lifecycle()
    codes = [(await get([], lifecycle, "/health/live")).status_code]
    lifecycle.mark_ready()
    codes.append((await get([], lifecycle, "/health/live")).status_code)
    lifecycle.begin_drain()
    codes.append((await get([], lifecycle, "/health/live")).status_code)

    assert codes == [200, 200, 200]


async def test_readiness_is_503_while_starting_200_when_ready_and_503_while_draining() -> None:
    lifecycle = Lifecycle()
    seen = [(await get([], lifecycle, "/health/ready")).status_code]
    lifecycle.mark_ready()
    seen.append((await get([], lifecycle, "/health/ready")).status_code)
    lifecycle.begin_drain()
    draining = await get([], lifecycle, "/health/ready")

    assert seen == [503, 200]
    assert (draining.status_code, draining.json()) == (503, {"status": "draining"})


async def test_metrics_are_the_app_registry_in_prometheus_text_format(lifecycle: Lifecycle) -> None:
    metrics = make_metrics()
    metrics.record_call("create_note", "ok", 0.01, "http")
    metrics.record_call("create_note", "denied", 0.001, "http", "permission_denied")
    metrics.record_call("get_note", "invalid", 0.001, "http", "invalid_input")
    metrics.record_call("get_note", "rate_limited", 0.001, "http", "rate_limited")

    async with await client_for([], lifecycle, metrics=metrics) as client:
        response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    calls = {
        (s.labels["tool"], s.labels["outcome"]): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
        if s.name == "mcp_desk_tool_calls_total"
    }
    assert calls[("create_note", "ok")] == 1.0
    assert calls[("create_note", "denied")] == 1.0
    assert calls[("get_note", "invalid")] == 1.0
    assert calls[("get_note", "rate_limited")] == 1.0
    assert calls[("get_note", "budget")] == 0.0


async def test_on_scrape_refreshes_gauges_before_rendering(lifecycle: Lifecycle) -> None:
    metrics = make_metrics()

    async def refresh() -> None:
        metrics.set_tickets({"open": 3})

    app = sidecar_app(
        metrics=metrics, lifecycle=lifecycle, checks=[], version=VERSION, clock=ManualClock(), on_scrape=refresh
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sidecar") as client:
        response = await client.get("/metrics")

    assert 'mcp_desk_tickets{status="open"} 3.0' in response.text


async def test_health_and_every_scrape_record_each_check_as_a_gauge(tmp_path: Path, lifecycle: Lifecycle) -> None:
    metrics = make_metrics()
    budget = {"ratio": 0.85}
    checks = [storage_probe(tmp_path), sandbox_check(lambda: "bwrap"), budget_check(lambda: budget["ratio"])]

    def gauges(text: str) -> dict[str, float]:
        return {
            s.labels["check"]: s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "mcp_desk_health_check_status"
        }

    async with await client_for(checks, lifecycle, metrics=metrics) as client:
        first = gauges((await client.get("/metrics")).text)
        budget["ratio"] = 1.0
        await client.get("/health")
        after_health = gauges(metrics.render().decode())

    assert first == {"storage": 1.0, "sandbox": 1.0, "budget": 0.5}
    assert after_health == {"storage": 1.0, "sandbox": 1.0, "budget": 0.0}


async def test_only_get_is_served(lifecycle: Lifecycle) -> None:
    async with await client_for([], lifecycle) as client:
        response = await client.post("/health")

    assert response.status_code == 405


@pytest.fixture
def log_buffer() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved_level, saved = root.level, list(root.handlers)
    buffer = io.StringIO()
    configure_logging("info", "json", stream=buffer)
    yield buffer
    for handler in [h for h in root.handlers if h not in saved]:
        root.removeHandler(handler)
    root.setLevel(saved_level)
    structlog.reset_defaults()


async def serve(app_lifecycle: Lifecycle, tg: anyio.abc.TaskGroup, checks: Sequence[HealthCheck] = ()) -> int:
    app = sidecar_app(metrics=make_metrics(), lifecycle=app_lifecycle, checks=checks, version=VERSION)
    port: int = await tg.start(serve_sidecar, app, "127.0.0.1", 0)
    return port


@pytest.fixture
async def task_group() -> AsyncIterator[anyio.abc.TaskGroup]:
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            yield tg
            tg.cancel_scope.cancel()


async def test_uvicorn_serves_the_sidecar_without_taking_over_signals(
    lifecycle: Lifecycle, task_group: anyio.abc.TaskGroup, log_buffer: io.StringIO
) -> None:
    before = signal.getsignal(signal.SIGTERM)
    port = await serve(lifecycle, task_group)

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        live = await client.get("/health/live", params={"token": "sk-in-query"})
        scraped = await client.get("/metrics")

    assert live.status_code == 200
    assert "server" not in live.headers
    assert "mcp_desk_build_info" in scraped.text
    assert signal.getsignal(signal.SIGTERM) == before
    access = [json.loads(line) for line in log_buffer.getvalue().splitlines() if '"uvicorn.access"' in line]
    assert [a["path"] for a in access] == ["/health/live", "/metrics"]
    assert "sk-in-query" not in log_buffer.getvalue()


async def test_readiness_turns_503_over_http_while_in_flight_calls_drain(task_group: anyio.abc.TaskGroup) -> None:
    lifecycle = Lifecycle()
    lifecycle.mark_ready()
    release = anyio.Event()
    port = await serve(lifecycle, task_group)

    async def in_flight_call() -> None:
        async with lifecycle.track():
            await release.wait()

    for _ in range(20):
        task_group.start_soon(in_flight_call)
    await anyio.wait_all_tasks_blocked()
    lifecycle.begin_drain()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        during = await client.get("/health/ready")
        release.set()
        cancelled = await lifecycle.drain(grace_seconds=10)
        after = await client.get("/health/ready")

    assert (during.status_code, during.json()["status"]) == (503, "draining")
    assert cancelled == 0
    assert (after.status_code, after.json()["status"]) == (503, "stopped")


async def test_the_sidecar_task_ends_cleanly_when_cancelled_and_frees_its_port(lifecycle: Lifecycle) -> None:
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            port = await serve(lifecycle, tg)
            tg.cancel_scope.cancel()

    with pytest.raises(OSError, match="connect"):
        await anyio.connect_tcp("127.0.0.1", port)
