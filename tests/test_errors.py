"""Errors: the one renderer, the one way input is quoted, and the codes derived from the classes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import TextContent

from mcp_desk import errors
from mcp_desk.app import create_app
from mcp_desk.errors import AppError, MissingClientCapability, RateLimited, quote, render
from tests.conftest import MakeSettings
from tests.e2e.conftest import MCP_DESK, base_env
from tests.httpsec_support import headers, messages, open_session, serving

pytestmark = pytest.mark.anyio

HUGE_METHOD = "x" * 1_000_000


def all_error_classes() -> list[type[AppError]]:
    found: list[type[AppError]] = [AppError]
    for cls in found:
        found.extend(cls.__subclasses__())
    return found


def test_quote_keeps_short_input_and_cuts_long_input_to_100_characters() -> None:
    assert quote("abc") == "abc"
    assert quote("y" * 100) == "y" * 100
    assert quote("z" * 5000) == "z" * 100 + "…"
    assert quote(12345) == "12345"


def test_an_anticipated_error_renders_as_code_and_public_text_with_its_details() -> None:
    rendered = render(RateLimited("slow down", retry_after_seconds=3.0))

    assert rendered.message == "rate_limited: slow down"
    assert rendered.details == {"code": "rate_limited", "retry_after_seconds": 3.0}


def test_an_unexpected_error_renders_generically_without_its_text() -> None:
    rendered = render(RuntimeError("/secret/path in sql"), tool="get_note")

    assert rendered.message == "Error executing tool get_note"
    assert rendered.details == {}


def test_a_missing_capability_renders_the_capabilities_the_client_must_declare() -> None:
    exc = MissingClientCapability("needs sampling", required_capabilities={"sampling": {}})
    assert render(exc).details == {"requiredCapabilities": {"sampling": {}}}


def test_error_codes_are_derived_from_every_error_class() -> None:
    assert set(errors.error_codes()) == {cls.code for cls in all_error_classes()}
    assert "missing_client_capability" in errors.error_codes()


def test_a_1mb_method_name_over_stdio_gets_a_small_method_not_found(tmp_path: Path) -> None:
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    lines = [
        json.dumps(init),
        json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json.dumps({"jsonrpc": "2.0", "id": 2, "method": HUGE_METHOD}),
    ]
    done = subprocess.run(
        [MCP_DESK, "stdio"],
        input=("\n".join(lines) + "\n").encode(),
        env=base_env(tmp_path),
        capture_output=True,
        timeout=60,
        check=False,
    )

    replies = {message["id"]: message for message in map(json.loads, done.stdout.decode().splitlines())}
    assert replies[2]["error"]["code"] == -32601
    assert len(json.dumps(replies[2])) < 1000
    assert replies[2]["error"].get("data") == quote(HUGE_METHOD)


async def test_a_1mb_method_name_over_http_gets_a_small_method_not_found(make_settings: MakeSettings) -> None:
    settings = make_settings()
    app = create_app(settings, transport="http")
    assert app.http is not None
    async with serving(app.http, settings) as url, httpx.AsyncClient(base_url=url, timeout=60) as client:
        session = await open_session(client)
        body = {"jsonrpc": "2.0", "id": 2, "method": HUGE_METHOD}
        response = await client.post("/mcp", json=body, headers=headers(session=session))

    [answer] = messages(response)
    assert answer["error"]["code"] == -32601
    assert len(response.content) < 1000
    assert answer["error"].get("data") == quote(HUGE_METHOD)


async def test_an_unknown_tool_name_is_quoted_to_100_characters(make_settings: MakeSettings) -> None:
    app = create_app(make_settings(), transport="memory")
    async with app.lifespan(), Client(app.server) as client:
        with pytest.raises(MCPError) as raised:
            await client.call_tool("t" * 10_000, {})

    assert raised.value.error.message == f"Unknown tool: {'t' * 100}…"


async def test_a_resource_uri_with_a_huge_id_is_refused_quoting_at_most_100_characters(
    make_settings: MakeSettings,
) -> None:
    app = create_app(make_settings(), transport="memory")
    async with app.lifespan(), Client(app.server) as client:
        with pytest.raises(MCPError) as raised:
            await client.read_resource("ticket://" + "9" * 100_000)

    assert raised.value.error.message.startswith("not_found: ticket ")
    assert len(raised.value.error.message) < 200


async def test_an_unknown_diagnostic_param_name_is_quoted_to_100_characters(make_settings: MakeSettings) -> None:
    app = create_app(make_settings(stdio_role="admin"), transport="memory")
    async with app.lifespan(), Client(app.server) as client:
        result = await client.call_tool("run_diagnostic", {"name": "uptime", "params": {"p" * 5000: 1}})

    assert result.is_error
    assert isinstance(result.content[0], TextContent)
    assert f"unknown param '{'p' * 100}…'" in result.content[0].text
    assert len(result.content[0].text) < 400
