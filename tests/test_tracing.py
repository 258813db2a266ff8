"""Traces: real servers export OTLP/HTTP to a real receiver on loopback, decoded with opentelemetry-proto."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import RequestParamsMeta

from mcp_desk.config import otel_traces_endpoint
from tests.conftest import ok
from tests.e2e.conftest import MCP_DESK, HttpServer, StartHttp, base_env, launch
from tests.e2e.support import ERAS, Era, http_client_for, log_lines
from tests.tracing_support import SERVER_KIND, STATUS_ERROR, ReceivedSpan, Receiver, descends_from, otlp_receiver

pytestmark = pytest.mark.anyio

# A value that travels only as a tool argument: it must never appear in a span.
MARKER = "argument-value-7c1e"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE}-{PARENT}-01"
META = RequestParamsMeta(traceparent=TRACEPARENT)  # type: ignore[typeddict-unknown-key]  # an open map: extra keys allowed
HEADER_TRACE = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
HEADER_PARENT = "1122334455667788"
CONVENTION_KEYS = {
    "mcp.method.name",
    "gen_ai.tool.name",
    "gen_ai.operation.name",
    "jsonrpc.request.id",
    "mcp.protocol.version",
    "network.transport",
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with otlp_receiver() as running:
        yield running


@pytest.fixture
def start_http(tmp_path: Path) -> Iterator[StartHttp]:
    """`mcp-desk http` processes under `tmp_path`, killed at the end if still running."""
    servers: list[HttpServer] = []

    def start(*args: str, **env: str) -> HttpServer:
        server = launch(tmp_path, f"server-{len(servers)}", *args, **env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.kill()


def tracing_env(receiver: Receiver) -> dict[str, str]:
    """Tracing on through the standard variables only; a short batch delay so spans leave promptly."""
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "50"}


def one(spans: list[ReceivedSpan], name: str, trace_id: str | None = None) -> ReceivedSpan:
    found = [s for s in spans if s.name == name and (trace_id is None or s.trace_id == trace_id)]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def check_call_span(span: ReceivedSpan, *, tool: str, transport: str) -> None:
    """The server span of a tools/call on the MCP conventions."""
    assert span.kind == SERVER_KIND
    assert span.attributes.keys() >= CONVENTION_KEYS
    assert span.attributes["mcp.method.name"] == "tools/call"
    assert span.attributes["gen_ai.tool.name"] == tool
    assert span.attributes["gen_ai.operation.name"] == "execute_tool"
    assert span.attributes["network.transport"] == transport
    assert span.resource["service.name"] == "mcp-desk"


def check_refusal(spans: list[ReceivedSpan], server_span: ReceivedSpan) -> None:
    """A call refused for its scope: a tool_error server span whose `guard authorize` child refused it."""
    assert server_span.attributes["error.type"] == "tool_error"
    assert server_span.status_code == STATUS_ERROR
    guard = [s for s in spans if s.name == "guard authorize" and s.trace_id == server_span.trace_id]
    assert len(guard) == 1
    assert guard[0].attributes["error.type"] == "permission_denied"
    assert guard[0].attributes["mcp_desk.guard.refused"] is True
    assert guard[0].status_code == STATUS_ERROR
    assert descends_from(guard[0], server_span, spans)
    passing = [s for s in spans if s.trace_id == server_span.trace_id and s.name == "guard Observe"]
    assert passing and "mcp_desk.guard.refused" not in passing[0].attributes


def check_no_argument_values(spans: list[ReceivedSpan]) -> None:
    leaked = [span.name for span in spans if MARKER in span.text()]
    assert leaked == []


def audit_records(data: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (data / "audit.jsonl").read_text().splitlines() if line.strip()]


def check_correlation(logs: list[dict[str, Any]], data: Path, *, tool: str, trace_id: str) -> None:
    """The call's canonical log line and every audit record of it carry the whole trace id."""
    finished = [line for line in logs if line.get("event") == "tool_call_finished" and line["tool"] == tool]
    assert [line["trace_id"] for line in finished] == [trace_id]
    records = [r for r in audit_records(data) if r.get("request_id") == finished[0]["request_id"]]
    assert records
    assert {r["trace_id"] for r in records} == {trace_id}


@pytest.mark.parametrize("mode", ERAS)
async def test_http_calls_in_either_era_export_convention_spans_parented_by_meta_and_correlated(
    start_http: StartHttp, receiver: Receiver, tmp_path: Path, mode: Era
) -> None:
    server = start_http(**tracing_env(receiver))
    with anyio.fail_after(60):
        async with (
            http_client_for() as http,
            Client(streamable_http_client(server.url, http_client=http), mode=mode) as client,
        ):
            arguments = {"title": MARKER, "body": MARKER}
            ok(await client.call_tool("create_note", arguments, meta=META))
            refused = await client.call_tool("run_diagnostic", {"name": MARKER})
            assert refused.is_error
    assert server.stop() == 0

    spans = receiver.wait_for(lambda got: any(s.name == "tools/call run_diagnostic" for s in got))
    created = one(spans, "tools/call create_note")
    check_call_span(created, tool="create_note", transport="tcp")
    assert (created.trace_id, created.parent_span_id) == (TRACE, PARENT)
    assert created.attributes["mcp.protocol.version"] == ("2026-07-28" if mode == "2026-07-28" else "2025-11-25")
    if mode == "legacy":
        assert len(created.attributes["mcp.session.id"]) == 32
    else:
        assert "mcp.session.id" not in created.attributes
    assert descends_from(one(spans, "storage create_note"), created, spans)
    check_refusal(spans, one(spans, "tools/call run_diagnostic"))
    check_no_argument_values(spans)
    check_correlation(log_lines(server.log), tmp_path / "data", tool="create_note", trace_id=TRACE)


async def test_the_http_traceparent_header_is_the_parent_when_meta_names_none(
    start_http: StartHttp, receiver: Receiver
) -> None:
    server = start_http(**tracing_env(receiver))
    header = f"00-{HEADER_TRACE}-{HEADER_PARENT}-01"
    with anyio.fail_after(60):
        async with (
            http_client_for(traceparent=header) as http,
            Client(streamable_http_client(server.url, http_client=http), mode="2026-07-28") as client,
        ):
            ok(await client.call_tool("get_usage", {}))
            ok(await client.call_tool("list_notes", {}, meta=META))
    assert server.stop() == 0

    spans = receiver.wait_for(lambda got: {"tools/call get_usage", "tools/call list_notes"} <= {s.name for s in got})
    from_header = one(spans, "tools/call get_usage")
    assert (from_header.trace_id, from_header.parent_span_id) == (HEADER_TRACE, HEADER_PARENT)
    from_meta = one(spans, "tools/call list_notes")
    assert (from_meta.trace_id, from_meta.parent_span_id) == (TRACE, PARENT)


def stdio_session(*calls: dict[str, Any]) -> str:
    """The JSON-RPC lines of a handshake followed by `calls` (ids from 2)."""
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    lines = [init, {"jsonrpc": "2.0", "method": "notifications/initialized"}]
    lines += [{"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": p} for n, p in enumerate(calls, start=2)]
    return "\n".join(json.dumps(line) for line in lines) + "\n"


def run_stdio(tmp_path: Path, session: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`mcp-desk stdio` fed `session`; closing stdin ends it cleanly (which flushes its spans)."""
    return subprocess.run(
        [MCP_DESK, "stdio"],
        input=session,
        env=base_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_stdio_calls_export_convention_spans_parented_by_meta_and_correlated(
    tmp_path: Path, receiver: Receiver
) -> None:
    session = stdio_session(
        {"name": "create_note", "arguments": {"title": MARKER, "body": MARKER}, "_meta": {"traceparent": TRACEPARENT}},
        {"name": "run_diagnostic", "arguments": {"name": MARKER}},
        {"name": "get_note", "arguments": {"note_id": MARKER}},
    )
    done = run_stdio(tmp_path, session, **tracing_env(receiver))
    assert done.returncode == 0, done.stderr[-2000:]

    spans = receiver.wait_for(lambda got: any(s.name == "tools/call get_note" for s in got))
    created = one(spans, "tools/call create_note")
    check_call_span(created, tool="create_note", transport="pipe")
    assert (created.trace_id, created.parent_span_id) == (TRACE, PARENT)
    assert created.attributes["jsonrpc.request.id"] == "2"
    assert created.attributes["mcp.protocol.version"] == "2025-06-18"
    assert "mcp.session.id" not in created.attributes
    check_refusal(spans, one(spans, "tools/call run_diagnostic"))
    missing = one(spans, "storage get_note")
    assert (missing.attributes["error.type"], missing.status_code) == ("not_found", STATUS_ERROR)
    check_no_argument_values(spans)  # the storage error's message quotes the id; its span does not
    logs = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    check_correlation(logs, tmp_path / "data", tool="create_note", trace_id=TRACE)
    refused_line = next(line for line in logs if line.get("tool") == "run_diagnostic")
    assert refused_line["trace_id"] == one(spans, "tools/call run_diagnostic").trace_id


@pytest.mark.parametrize(
    "env",
    [
        pytest.param({"OTEL_SERVICE_NAME": "desk", "OTEL_TRACES_SAMPLER": "always_on"}, id="no-endpoint"),
        pytest.param({"OTEL_SDK_DISABLED": "true"}, id="sdk-disabled"),
        pytest.param({"OTEL_TRACES_EXPORTER": "none"}, id="exporter-none"),
    ],
)
def test_without_an_endpoint_nothing_is_exported_and_no_trace_id_is_logged(
    tmp_path: Path, receiver: Receiver, env: dict[str, str]
) -> None:
    if "OTEL_SERVICE_NAME" not in env:
        env = {**env, **tracing_env(receiver)}  # an endpoint that the switch must override
    session = stdio_session({"name": "create_note", "arguments": {"title": "t", "body": "b"}})
    done = run_stdio(tmp_path, session, **env)
    assert done.returncode == 0, done.stderr[-2000:]

    assert receiver.requests == []
    finished = [json.loads(line) for line in done.stderr.splitlines() if "tool_call_finished" in line]
    assert len(finished) == 1
    assert "trace_id" not in finished[0]
    assert all("trace_id" not in record or record["trace_id"] is None for record in audit_records(tmp_path / "data"))


OFF_PROBE = """
import sys, anyio
from mcp import Client
from mcp_desk.app import create_app
from mcp_desk.config import Settings

async def main():
    app = create_app(Settings(storage_path=sys.argv[1]), transport="stdio")
    async with app.lifespan(), Client(app.server) as client:
        for _ in range(3):
            await client.call_tool("create_note", {"title": "t", "body": "b"})
    names = sorted({type(m).__name__ for m in app.server.middleware})
    print("MIDDLEWARE=" + ",".join(names))
    sdk = ("opentelemetry.sdk", "opentelemetry.exporter")
    print("LOADED=" + ",".join(sorted(m for m in sys.modules if m.startswith(sdk))))

anyio.run(main)
"""


def test_tracing_off_loads_no_opentelemetry_sdk_and_builds_no_span_middleware(tmp_path: Path) -> None:
    """Off means free: the SDK's own span middleware is left out and the SDK is never imported."""
    done = subprocess.run(
        [str(Path(MCP_DESK).parent / "python"), "-c", OFF_PROBE, str(tmp_path / "data")],
        env=base_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = dict(line.split("=", 1) for line in done.stdout.splitlines() if line.startswith(("MIDDLEWARE=", "LOADED=")))
    middleware, loaded = found["MIDDLEWARE"], found["LOADED"]
    assert "OpenTelemetryMiddleware" not in middleware
    assert "MethodTimer" in middleware
    assert loaded == ""


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, "http://collector:4318/v1/traces"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"}, "http://collector:4318/v1/traces"),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b/traces"},
            "http://b/traces",
        ),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_SDK_DISABLED": "TRUE"}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_TRACES_EXPORTER": "none"}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_TRACES_EXPORTER": "otlp"}, "http://a:4318/v1/traces"),
    ],
)
def test_the_traces_endpoint_comes_from_the_standard_variables(env: dict[str, str], expected: str | None) -> None:
    assert otel_traces_endpoint(env) == expected


def test_a_sandbox_run_is_a_child_span_of_its_call_and_names_no_argument(tmp_path: Path, receiver: Receiver) -> None:
    session = stdio_session({"name": "run_diagnostic", "arguments": {"name": "disk_usage"}})
    done = run_stdio(tmp_path, session, MCP_DESK_STDIO_ROLE="admin", **tracing_env(receiver))
    assert done.returncode == 0, done.stderr[-2000:]

    spans = receiver.wait_for(lambda got: any(s.name == "tools/call run_diagnostic" for s in got))
    call = one(spans, "tools/call run_diagnostic")
    assert "error.type" not in call.attributes
    run = one(spans, "sandbox run")
    assert descends_from(run, call, spans)
    assert "disk_usage" not in run.text()
