"""Observe: one canonical log line and one metric sample per call, whatever the outcome."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import anyio
import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from mcp_desk.domain.principal import Principal
from mcp_desk.errors import (
    AppError,
    BudgetExceeded,
    CommandRejected,
    InvalidInput,
    NotFound,
    PermissionDenied,
    RateLimited,
)
from mcp_desk.lifecycle import Lifecycle
from mcp_desk.logging import configure_logging
from mcp_desk.metrics import Metrics
from mcp_desk.policy.observe import Observe
from mcp_desk.policy.pipeline import Next, ToolCall, ToolSpec, build_chain
from tests.clock import ManualClock

pytestmark = pytest.mark.anyio

ALICE = Principal(id="alice", role="agent", scopes=frozenset({"notes:read"}), transport="stdio")


async def create_note(**_: Any) -> dict[str, Any]:
    return {"id": "n1", "version": 1}


SPEC = ToolSpec(name="create_note", fn=create_note, scope="notes:write")


def make_call(arguments: dict[str, Any] | None = None, request_id: str = "req-1") -> ToolCall:
    return ToolCall(spec=SPEC, principal=ALICE, arguments=arguments or {}, request_id=request_id, transport="stdio")


def counter(metrics: Metrics, tool: str, outcome: str) -> float:
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            if sample.name == "mcp_desk_tool_calls_total" and sample.labels == {"tool": tool, "outcome": outcome}:
                return sample.value
    raise AssertionError(f"no sample for {tool}/{outcome}")


def endpoint_taking(clock: ManualClock, seconds: float, result: Any = None, error: Exception | None = None) -> Next:
    async def endpoint(call: ToolCall) -> Any:
        clock.now += seconds
        if error is not None:
            raise error
        return result

    return endpoint


async def test_a_successful_call_logs_one_canonical_line_and_counts_ok() -> None:
    clock, metrics = ManualClock(100.0), Metrics(version="t", tools=["create_note"])
    chain = build_chain([Observe(recorder=metrics, clock=clock)], endpoint_taking(clock, 0.25, {"id": "n1"}))

    with capture_logs() as logs:
        result = await chain(make_call({"title": "hello", "body": "sk-live-secret"}))

    assert result == {"id": "n1"}
    assert logs == [
        {
            "event": "tool_call_finished",
            "log_level": "info",
            "tool": "create_note",
            "principal": "alice",
            "outcome": "ok",
            "duration_ms": 250.0,
            "request_id": "req-1",
            "transport": "stdio",
            "args_bytes": len(b'{"title":"hello","body":"sk-live-secret"}'),
            "result_bytes": len(b'{"id":"n1"}'),
        }
    ]
    assert counter(metrics, "create_note", "ok") == 1.0


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (PermissionDenied("create_note needs scope 'notes:write'"), "denied"),
        (InvalidInput("title is longer than 200 characters"), "invalid"),
        (RateLimited("60 requests a minute", retry_after_seconds=3), "rate_limited"),
        (BudgetExceeded("daily budget spent"), "budget"),
        (NotFound("no such note"), "error"),
    ],
)
async def test_anticipated_refusals_are_counted_by_their_outcome_and_re_raised(error: AppError, outcome: str) -> None:
    clock, metrics = ManualClock(100.0), Metrics(version="t", tools=["create_note"])
    chain = build_chain([Observe(recorder=metrics, clock=clock)], endpoint_taking(clock, 0.001, error=error))

    with capture_logs() as logs, pytest.raises(type(error)):
        await chain(make_call())

    assert counter(metrics, "create_note", outcome) == 1.0
    assert [(e["event"], e["outcome"], e["error_type"], e["log_level"]) for e in logs] == [
        ("tool_call_finished", outcome, error.code, "info")
    ]


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return s.value
    raise AssertionError(f"no sample {name}{labels}")


async def test_every_denial_and_rate_limit_is_counted_once_by_tool_and_by_scope() -> None:
    clock, metrics = ManualClock(), Metrics(version="t", tools=["create_note"])
    refusals: list[AppError] = [
        PermissionDenied("missing scope notes:write"),
        CommandRejected("option not allowed"),
        RateLimited("tokens per minute reached", retry_after_seconds=3, scope="tokens"),
        RateLimited("tool limit reached", retry_after_seconds=3, scope="tool"),
        RateLimited("requests per minute reached", retry_after_seconds=3, scope="requests"),
        InvalidInput("title too long"),
        BudgetExceeded("daily budget spent"),
    ]
    for error in refusals:
        chain = build_chain([Observe(recorder=metrics, clock=clock)], endpoint_taking(clock, 0.0, error=error))
        with pytest.raises(type(error)):
            await chain(make_call())

    assert sample(metrics, "mcp_desk_permission_denied_total", tool="create_note") == 2.0
    scopes = ("requests", "tokens", "tool")
    assert [sample(metrics, "mcp_desk_rate_limited_total", scope=s) for s in scopes] == [1.0, 1.0, 1.0]


async def test_an_unexpected_exception_counts_as_error_and_logs_only_its_type() -> None:
    clock, metrics = ManualClock(100.0), Metrics(version="t", tools=["create_note"])
    boom = RuntimeError("password=hunter2 in /srv/secret/path")
    chain = build_chain([Observe(recorder=metrics, clock=clock)], endpoint_taking(clock, 0.001, error=boom))

    with capture_logs() as logs, pytest.raises(RuntimeError):
        await chain(make_call())

    assert counter(metrics, "create_note", "error") == 1.0
    (line,) = logs
    assert (line["log_level"], line["error_type"], line["exc_type"]) == ("error", "internal", "RuntimeError")
    assert "hunter2" not in repr(line)


async def test_arguments_and_results_are_measured_never_logged() -> None:
    clock, metrics = ManualClock(100.0), Metrics(version="t", tools=["create_note"])
    result = {"body": "the result text"}
    chain = build_chain([Observe(recorder=metrics, clock=clock)], endpoint_taking(clock, 0.0, result))

    with capture_logs() as logs:
        await chain(make_call({"body": "the argument text"}))

    assert "argument text" not in repr(logs)
    assert "result text" not in repr(logs)


async def test_inner_guards_and_the_tool_log_with_the_bound_request_context() -> None:
    clock, metrics = ManualClock(100.0), Metrics(version="t", tools=["create_note"])
    seen: list[dict[str, Any]] = []

    async def endpoint(call: ToolCall) -> Any:
        seen.append(structlog.contextvars.get_contextvars())
        return {}

    chain = build_chain([Observe(recorder=metrics, clock=clock)], endpoint)
    await chain(make_call(request_id="req-42"))

    assert seen == [{"request_id": "req-42", "tool": "create_note", "principal": "alice"}]
    assert structlog.contextvars.get_contextvars() == {}


async def test_a_call_arriving_while_draining_is_refused_counted_and_never_run() -> None:
    clock, metrics, lifecycle = ManualClock(100.0), Metrics(version="t", tools=["create_note"]), Lifecycle()
    ran: list[ToolCall] = []

    async def endpoint(call: ToolCall) -> Any:
        ran.append(call)
        return {}

    chain = build_chain([Observe(recorder=metrics, lifecycle=lifecycle, clock=clock)], endpoint)
    lifecycle.begin_drain()

    with capture_logs() as logs, pytest.raises(AppError) as refused:
        await chain(make_call())

    assert refused.value.code == "shutting_down"
    assert ran == []
    assert counter(metrics, "create_note", "error") == 1.0
    assert logs[-1]["error_type"] == "shutting_down"


async def test_a_running_call_is_tracked_so_the_drain_waits_for_it() -> None:
    clock, metrics, lifecycle = ManualClock(100.0), Metrics(version="t", tools=["create_note"]), Lifecycle()
    release = anyio.Event()
    results: list[Any] = []

    async def endpoint(call: ToolCall) -> Any:
        await release.wait()
        return {"id": "n1"}

    chain = build_chain([Observe(recorder=metrics, lifecycle=lifecycle, clock=clock)], endpoint)

    async def call() -> None:
        results.append(await chain(make_call()))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            await anyio.wait_all_tasks_blocked()
            assert lifecycle.in_flight == 1
            tg.start_soon(lifecycle.drain, 30)
            await anyio.wait_all_tasks_blocked()
            release.set()

    assert results == [{"id": "n1"}]
    assert counter(metrics, "create_note", "ok") == 1.0


async def test_a_cancelled_call_is_still_logged_and_counted() -> None:
    clock, metrics = ManualClock(100.0), Metrics(version="t", tools=["create_note"])

    async def endpoint(call: ToolCall) -> Any:
        await anyio.sleep_forever()

    chain = build_chain([Observe(recorder=metrics, clock=clock)], endpoint)

    async def call() -> None:
        await chain(make_call())

    with capture_logs() as logs, anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            await anyio.wait_all_tasks_blocked()
            tg.cancel_scope.cancel()

    assert [(e["outcome"], e["error_type"]) for e in logs] == [("error", "cancelled")]


async def test_the_log_line_follows_the_logging_level_when_logging_is_reconfigured() -> None:
    clock, metrics = ManualClock(100.0), Metrics(version="t", tools=["create_note"])
    chain = build_chain([Observe(recorder=metrics, clock=clock)], endpoint_taking(clock, 0.01, {"id": "n1"}))
    root = logging.getLogger()
    saved_level, saved_handlers = root.level, list(root.handlers)
    quiet, loud = io.StringIO(), io.StringIO()
    try:
        configure_logging("warning", "json", stream=quiet)
        await chain(make_call(request_id="quiet"))
        configure_logging("info", "json", stream=loud)
        await chain(make_call(request_id="loud"))
    finally:
        for handler in list(root.handlers):
            if handler not in saved_handlers:
                root.removeHandler(handler)
        root.setLevel(saved_level)
        structlog.reset_defaults()
    assert "tool_call_finished" not in quiet.getvalue()
    assert [json.loads(line)["request_id"] for line in loud.getvalue().splitlines()] == ["loud"]
    assert counter(metrics, "create_note", "ok") == 2
