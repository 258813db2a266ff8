"""Logging: JSON lines on stderr with the canonical fields, library logs bridged in, secrets scrubbed."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from starlette.testclient import TestClient

from mcp_desk.logging import configure_logging, shorten_session_ids

REPO = Path(__file__).resolve().parents[1]


def fake_redactor(text: str) -> str:
    """Stands in for mcp_desk.policy.redaction.Redactor().text, which another module provides."""
    return text.replace("sk-live-0123456789", "[REDACTED]")


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """Configure logging into a buffer, and put the process's logging back afterwards."""
    root = logging.getLogger()
    saved_level, saved_handlers = root.level, list(root.handlers)
    buffer = io.StringIO()
    configure_logging("debug", "json", redact=fake_redactor, stream=buffer)
    yield buffer
    for handler in list(root.handlers):
        if handler not in saved_handlers:
            root.removeHandler(handler)
    root.setLevel(saved_level)
    structlog.reset_defaults()


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_structlog_events_are_json_lines_with_context_and_timestamp(stream: io.StringIO) -> None:
    with structlog.contextvars.bound_contextvars(request_id="req-1", tool="get_note", principal="alice"):
        structlog.get_logger().info("tool_call_finished", outcome="ok", duration_ms=1.5)

    (line,) = lines(stream)
    assert line["event"] == "tool_call_finished"
    assert (line["request_id"], line["tool"], line["principal"]) == ("req-1", "get_note", "alice")
    assert (line["outcome"], line["duration_ms"], line["level"]) == ("ok", 1.5, "info")
    assert line["timestamp"].endswith("Z")


def test_sdk_and_uvicorn_loggers_go_through_the_same_formatting(stream: io.StringIO) -> None:
    logging.getLogger("mcp.server.lowlevel.server").warning("dropped %r: malformed params", "tools/call")
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 42)

    first, second = lines(stream)
    assert (first["logger"], first["level"], first["event"]) == (
        "mcp.server.lowlevel.server",
        "warning",
        "dropped 'tools/call': malformed params",
    )
    assert (second["logger"], second["event"]) == ("uvicorn.error", "Started server process [42]")


def test_secrets_are_redacted_in_events_fields_and_tracebacks(stream: io.StringIO) -> None:
    log = structlog.get_logger()
    log.info("key_used key=sk-live-0123456789", nested={"list": ["sk-live-0123456789"]})
    try:
        raise ValueError("bad token sk-live-0123456789")
    except ValueError:
        log.exception("tool_failed")
        logging.getLogger("mcp.server.mcpserver.server").exception("Tool %r raised an unexpected exception", "t")

    assert "sk-live-0123456789" not in stream.getvalue()
    plain, ours, sdk = lines(stream)
    assert plain["nested"] == {"list": ["[REDACTED]"]}
    assert ours["exception"][0]["exc_value"] == "bad token [REDACTED]"
    assert sdk["exception"][0]["exc_type"] == "ValueError"


def test_fields_named_like_secrets_are_replaced_whatever_they_hold(stream: io.StringIO) -> None:
    """Log events go through the same walk as results: a `password` field is a secret even if it looks plain."""
    structlog.get_logger().info("login_checked", password="plainword", user="alice")

    (line,) = lines(stream)
    assert (line["password"], line["user"]) == ("[REDACTED:password]", "alice")


def test_tracebacks_carry_no_local_variables(stream: io.StringIO) -> None:
    def fail(password: str) -> None:
        raise RuntimeError("failed")

    try:
        fail("hunter2")
    except RuntimeError:
        structlog.get_logger().exception("tool_failed")

    assert "hunter2" not in stream.getvalue()


def test_pydantic_input_values_are_dropped(stream: io.StringIO) -> None:
    message = "1 validation error for Args\ntitle\n  Input should be a valid string [type=string_type, "
    structlog.get_logger().warning("validation_failed", detail=message + "input_value={'pw': 'x'}, input_type=dict]")

    (line,) = lines(stream)
    assert "'pw'" not in line["detail"]
    assert "input_value=<omitted>, input_type=dict]" in line["detail"]


def test_session_ids_in_library_messages_are_shortened(stream: io.StringIO) -> None:
    session = "0123456789abcdef0123456789abcdef"
    logging.getLogger("mcp.server.streamable_http").info(f"Terminating session: {session}")

    (line,) = lines(stream)
    assert line["event"] == "Terminating session: 01234567…"


@pytest.mark.parametrize(
    ("text", "shortened"),
    [
        ("Terminating session: 0123456789abcdef0123456789abcdef", "Terminating session: 01234567…"),
        ("Session 0123456789abcdef0123456789abcdef idle timeout", "Session 01234567… idle timeout"),
        ("Created new session with ID: 12345678-1234-1234-1234-123456789abc", "Created new session with ID: 12345678…"),
        (f"unknown or expired session ID: {'f' * 64}", "unknown or expired session ID: ffffffff…"),
        ('{"mcp-session-id": "0123456789abcdef0123456789abcdef"}', '{"mcp-session-id": "01234567…"}'),
        ("mcp_session_id=0123456789abcdef0123456789abcdef&x=1", "mcp_session_id=01234567…&x=1"),
        ("session 0123456789abcdef0123456789abcdef closed", "session 01234567… closed"),
    ],
)
def test_session_ids_are_shortened_where_a_session_is_named(text: str, shortened: str) -> None:
    assert shorten_session_ids(text) == shortened


@pytest.mark.parametrize(
    "text",
    [
        "trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7",
        "request 123e4567-e89b-12d3-a456-426614174000 failed",
        f"sha256 {'a' * 64} of the export",
        "ticket 12345 and sha cafe",
        "session manager started; session: 0123456789abcdefxyz is not an id",
    ],
)
def test_hex_outside_a_session_context_is_left_whole(text: str) -> None:
    assert shorten_session_ids(text) == text


def test_a_trace_id_in_a_library_log_line_stays_whole(stream: io.StringIO) -> None:
    trace_id, session = "4bf92f3577b34da6a3ce929d0e0e4736", "0123456789abcdef0123456789abcdef"
    logging.getLogger("mcp.server.streamable_http").info(f"Session {session} closed (trace {trace_id})")

    (line,) = lines(stream)
    assert line["event"] == f"Session 01234567… closed (trace {trace_id})"


class Collecting(logging.Handler):
    """A handler other than ours: it keeps the records it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_the_session_id_filter_shortens_records_for_every_handler(stream: io.StringIO) -> None:
    """configure_logging installs the filter, so a handler other than ours (a host's, caplog) sees short ids."""
    other = Collecting()
    sdk = logging.getLogger("mcp.server.streamable_http_manager")
    sdk.addHandler(other)
    try:
        sdk.info("Created new transport with session ID: %s", "0123456789abcdef0123456789abcdef")
    finally:
        sdk.removeHandler(other)

    assert [r.getMessage() for r in other.records] == ["Created new transport with session ID: 01234567…"]


def test_sdk_debug_lines_carrying_whole_messages_are_cut(stream: io.StringIO) -> None:
    logging.getLogger("mcp.server.sse").debug('Received JSON: b\'{"params": {"arguments": {"body": "private"}}}\'')

    (line,) = lines(stream)
    assert line["event"] == "Received JSON: <omitted>"


def test_uvicorn_access_lines_drop_the_query_string(stream: io.StringIO) -> None:
    access = logging.getLogger("uvicorn.access")
    access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/mcp?api_key=abc", "1.1", 200)

    (line,) = lines(stream)
    assert line["event"] == '127.0.0.1:5000 - "GET /mcp HTTP/1.1" 200'
    assert (line["path"], line["status_code"], line["http_method"]) == ("/mcp", 200, "GET")


def test_urls_in_library_messages_lose_their_query_string(stream: io.StringIO) -> None:
    logging.getLogger("httpx").info("HTTP Request: %s %s", "POST", "https://hooks.example/alert?token=abc#frag")

    (line,) = lines(stream)
    assert line["event"] == "HTTP Request: POST https://hooks.example/alert#frag"


def test_a_real_sdk_session_id_is_logged_shortened(stream: io.StringIO) -> None:
    """The SDK logs 'Created new transport with session ID: <32 hex>' when a session opens."""
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("probe")
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    with TestClient(server.streamable_http_app(), base_url="http://127.0.0.1:8000") as client:
        response = client.post("/mcp", json=initialize, headers=headers)
    session_id = response.headers["mcp-session-id"]
    events = [line["event"] for line in lines(stream)]

    assert session_id not in stream.getvalue()
    assert f"Created new transport with session ID: {session_id[:8]}…" in events
    assert "serverInfo" not in stream.getvalue(), "the SSE chunk with the whole result was logged"


def test_sse_chunks_carrying_results_are_cut(stream: io.StringIO) -> None:
    logging.getLogger("sse_starlette.sse").debug("chunk: %s", b'data: {"result": {"body": "private"}}')

    (line,) = lines(stream)
    assert line["event"] == "chunk: <omitted>"


def test_calling_configure_twice_keeps_one_handler_and_the_new_settings(stream: io.StringIO) -> None:
    second = io.StringIO()
    configure_logging("warning", "console", stream=second)
    configure_logging("warning", "console", stream=second)

    structlog.get_logger().info("hidden")
    structlog.get_logger().warning("shown", n=1)
    logging.getLogger("mcp").info("hidden too")

    ours = [h for h in logging.getLogger().handlers if type(h).__module__ == "mcp_desk.logging"]
    assert len(ours) == 1
    assert stream.getvalue() == ""
    assert "shown" in second.getvalue()
    assert "hidden" not in second.getvalue()


def test_library_handlers_installed_earlier_are_replaced_by_the_bridge(stream: io.StringIO) -> None:
    access = logging.getLogger("uvicorn.access")
    access.addHandler(logging.StreamHandler(io.StringIO()))
    access.propagate = False

    configure_logging("info", "json", stream=stream)
    access.info("hello")

    assert access.handlers == []
    assert lines(stream)[-1]["event"] == "hello"


STDIO_SCRIPT = textwrap.dedent(
    """
    import logging, structlog
    from mcp_desk.logging import configure_logging
    configure_logging("info", "json")
    from mcp.server.mcpserver import MCPServer
    MCPServer("probe")  # calls logging.basicConfig when built
    structlog.get_logger().info("tool_call_finished", tool="get_note")
    logging.getLogger("mcp.server.lowlevel.server").warning("sdk line")
    """
)


def test_a_real_process_writes_nothing_to_stdout() -> None:
    """stdout is the stdio transport: every log line, ours and the SDK's, goes to stderr."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", STDIO_SCRIPT], capture_output=True, text=True, env=env, timeout=60, check=True
    )

    assert done.stdout == ""
    events = [json.loads(line)["event"] for line in done.stderr.splitlines()]
    assert events == ["tool_call_finished", "sdk line"]


def test_console_format_is_readable_text(stream: io.StringIO) -> None:
    console = io.StringIO()
    configure_logging("info", "console", stream=console)
    structlog.get_logger().info("server_ready", port=1)

    assert "server_ready" in console.getvalue()
    assert "port=1" in console.getvalue()
