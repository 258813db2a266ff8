"""The registry as the client sees it: results, the output cap's note, and error rendering."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from mcp_types import CallToolResult, TextContent
from mcp_types.methods import serialize_server_result

from mcp_desk.registry import TRUNCATION_META, ok_result
from tests.conftest import MakeApp, connected, ok

pytestmark = pytest.mark.anyio


async def test_a_capped_result_tells_the_client_it_was_shortened_and_stays_schema_valid(make_app: MakeApp) -> None:
    app = make_app(max_output_tokens=256)
    async with connected(app) as client:
        created = ok(await client.call_tool("create_note", {"title": "long", "body": "word " * 2000}))
        result = await client.call_tool("get_note", {"note_id": created["id"]})

    fetched = ok(result)
    assert fetched["id"] == created["id"]
    assert fetched["body"].endswith("[…truncated]")
    note = result.content[-1]
    assert isinstance(note, TextContent)
    assert "256-token output cap" in note.text
    assert result.meta is not None
    assert result.meta["mcp-desk/truncation"]["truncated"] is True


async def test_a_result_within_the_cap_carries_no_truncation_note(make_app: MakeApp) -> None:
    async with connected(make_app()) as client:
        created = ok(await client.call_tool("create_note", {"title": "short", "body": "a few words"}))
        result = await client.call_tool("get_note", {"note_id": created["id"]})

    ok(result)
    assert len(result.content) == 1
    assert not (result.meta or {}).get("mcp-desk/truncation")


PAGE: dict[str, Any] = {
    "items": [{"id": "n1", "title": "t", "tags": ["a"], "version": 1, "updated_at": "x", "snippet": None}],
    "next_cursor": None,
}


@pytest.mark.parametrize("version", ["2025-11-25", "2026-07-28"])
@pytest.mark.parametrize("note", [None, "cut at the 256-token output cap"])
def test_the_wire_json_of_a_result_is_what_the_sdk_makes_of_the_same_call_tool_result(
    version: str, note: str | None
) -> None:
    """`ok_result` skips building the model; what the SDK writes must not change, `isError: false` included."""
    content = [TextContent(type="text", text=orjson.dumps(PAGE).decode())]
    if note is not None:
        content.append(TextContent(type="text", text=note))
    meta = {TRUNCATION_META: {"truncated": True, "note": note}} if note is not None else None
    model = CallToolResult(content=content, structured_content=PAGE, _meta=meta)
    expected = serialize_server_result(
        "tools/call", version, model.model_dump(by_alias=True, mode="json", exclude_none=True)
    )

    wire = serialize_server_result("tools/call", version, ok_result(PAGE, truncation_note=note))

    assert orjson.dumps(wire) == orjson.dumps(expected)
    assert wire["isError"] is False
