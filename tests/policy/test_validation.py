"""The validate guard: schema parsing without echoing input, and configured limits named in refusals."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from mcp_desk.domain.principal import ALL_SCOPES, Principal
from mcp_desk.errors import InvalidInput
from mcp_desk.policy.pipeline import ToolCall, build_chain
from mcp_desk.policy.validation import InputLimits, Validate
from mcp_desk.tools.notes import TOOLS as NOTE_TOOLS
from tests.conftest import MakeApp, connected, error

pytestmark = pytest.mark.anyio
CREATE = next(spec for spec in NOTE_TOOLS if spec.name == "create_note")


async def run(arguments: dict[str, Any], limits: InputLimits | None = None) -> dict[str, Any]:
    async def endpoint(call: ToolCall) -> dict[str, Any]:
        return dict(call.arguments)

    chain = build_chain([Validate(limits or InputLimits())], endpoint)
    principal = Principal(id="p", role="agent", scopes=ALL_SCOPES)
    result: dict[str, Any] = await chain(
        ToolCall(spec=CREATE, principal=principal, arguments=arguments, request_id="r")
    )
    return result


async def test_valid_arguments_reach_the_tool_with_defaults_filled() -> None:
    assert await run({"title": "t", "body": "b"}) == {"title": "t", "body": "b", "tags": None, "idempotency_key": None}


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"body": "b"}, "missing required argument 'title'"),
        ({"title": "t", "body": "b", "extra": 1}, "unexpected argument 'extra'"),
        ({"title": ["x"], "body": "b"}, "title: Input should be a valid string"),
        ({"title": "t" * 201, "body": "b"}, "title is 201 characters; the limit is 200 (MCP_DESK_MAX_TITLE_CHARS)"),
        ({"title": "t", "body": "é" * 40_000}, "the limit is 65536 bytes (MCP_DESK_MAX_BODY_BYTES)"),
        ({"title": "t", "body": "b", "tags": ["x"] * 21}, "21 tags given; the most is 20"),
        ({"title": "t", "body": "b", "tags": ["y" * 41]}, "MCP_DESK_MAX_TAG_CHARS"),
        ({"title": "t", "body": "b", "tags": [" "]}, "tags must not be empty"),
        ({"title": "bell\x07", "body": "b"}, "title contains control characters"),
        ({"title": "t", "body": "\ud800"}, "body is not valid UTF-8"),
    ],
)
async def test_bad_arguments_are_refused_with_an_actionable_message(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        await run(arguments)
    assert message in caught.value.public


async def test_refusals_never_echo_the_rejected_value() -> None:
    secret = "sk-live-1234567890abcdef"
    with pytest.raises(InvalidInput) as caught:
        await run({"title": {"nested": secret}, "body": "b"})
    assert secret not in caught.value.public


async def test_limits_come_from_configuration(make_app: MakeApp) -> None:
    async with connected(make_app(max_title_chars=5, max_page_limit=3)) as client:
        assert "the limit is 5" in error(await client.call_tool("create_note", {"title": "123456", "body": "b"}))
        assert "the most is 3" in error(await client.call_tool("list_notes", {"limit": 4}))


async def test_tabs_and_newlines_are_plain_text(client: Client) -> None:
    result = await client.call_tool("create_note", {"title": "a\tb", "body": "line 1\r\nline 2"})
    assert not result.is_error
