"""delete_ticket's confirmation over real Streamable HTTP (a real `mcp-desk http` process), in both eras."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import error, ok
from tests.e2e.conftest import StartHttp
from tests.e2e.support import ERAS, Era, http_client_for
from tests.tools.test_confirm import ANSWERS, Person, target

pytestmark = pytest.mark.anyio


async def _http_delete(url: str, era: Era, answer: types.ElicitResult) -> tuple[dict[str, Any], bool, Person]:
    person = Person(answer)
    async with (
        http_client_for() as http,
        Client(streamable_http_client(url, http_client=http), mode=era, elicitation_callback=person) as client,
    ):
        ticket_id, _ = await target(client, "delete_ticket")
        result = ok(await client.call_tool("delete_ticket", {"ticket_id": ticket_id}))
        still_there = not (await client.call_tool("get_ticket", {"ticket_id": ticket_id})).is_error
    return result, still_there, person


@pytest.mark.slow
@pytest.mark.parametrize("era", ERAS)
async def test_confirmation_over_real_http_in_either_era(start_http: StartHttp, tmp_path: Path, era: Era) -> None:
    server = start_http(MCP_DESK_STDIO_ROLE="admin")
    with anyio.fail_after(60):
        accepted, accepted_kept, asked = await _http_delete(server.url, era, ANSWERS["accepted"])
        declined, declined_kept, _ = await _http_delete(server.url, era, ANSWERS["declined"])
        async with (
            http_client_for() as http,
            Client(streamable_http_client(server.url, http_client=http), mode=era) as client,
        ):
            ticket_id, _ = await target(client, "delete_ticket")
            refused = error(await client.call_tool("delete_ticket", {"ticket_id": ticket_id}))

    assert (accepted["deleted"], accepted["confirmed"], accepted_kept) == (True, True, False)
    assert (declined["deleted"], declined["confirmed"], declined_kept) == (False, False, True)
    assert len(asked.asked) == 1
    assert refused.startswith("confirmation_required:")
    lines = (tmp_path / "data" / "audit.jsonl").read_text().splitlines()
    results = [
        r
        for line in lines
        if (r := json.loads(line)).get("tool") == "delete_ticket" and r["event_type"] == "tool_result"
    ]
    assert [r["confirmed"] for r in results if r["detail"] != "confirmation requested"] == [True, False, None]
