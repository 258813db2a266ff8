"""The registry as the client sees it: results, the output cap's note, and error rendering."""

from __future__ import annotations

import pytest
from mcp_types import TextContent

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
