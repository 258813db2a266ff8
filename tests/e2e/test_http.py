"""`mcp-desk http` as a real process, driven by the official client in both protocol eras."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest
from mcp.shared.exceptions import MCPError

from tests.conftest import ok
from tests.e2e.conftest import StartHttp
from tests.e2e.support import ERAS, Era, connect, create_key

pytestmark = pytest.mark.anyio

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.mark.parametrize("mode", ERAS)
async def test_a_client_in_either_era_lists_tools_creates_and_reads_a_note_and_gets_a_protocol_error_for_unknown_tools(
    start_http: StartHttp, mode: Era
) -> None:
    server = start_http()
    with anyio.fail_after(60):
        async with connect(server.url, mode=mode) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert {"create_note", "get_note", "search_docs", "get_usage"} <= names
            created = ok(await client.call_tool("create_note", {"title": f"over {mode}", "body": "hello"}))
            fetched = ok(await client.call_tool("get_note", {"note_id": created["id"]}))
            assert (fetched["title"], fetched["body"], fetched["version"]) == (f"over {mode}", "hello", 1)
            with pytest.raises(MCPError) as raised:
                await client.call_tool("no_such_tool", {})
            assert raised.value.error.code == -32602
    assert server.stop() == 0


async def test_with_api_keys_only_a_valid_bearer_key_in_the_header_gets_in_and_no_key_is_logged(
    start_http: StartHttp, tmp_path: Path
) -> None:
    key = create_key(tmp_path, "alice", "agent")
    server = start_http(MCP_DESK_API_KEYS_FILE=str(tmp_path / "keys.txt"))
    bad_key = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    with anyio.fail_after(60):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=30) as raw:
            missing = await raw.post("/mcp", json=INITIALIZE, headers=ACCEPT)
            assert missing.status_code == 401
            assert missing.headers["WWW-Authenticate"].startswith("Bearer")
            bad = await raw.post("/mcp", json=INITIALIZE, headers={**ACCEPT, "Authorization": f"Bearer {bad_key}"})
            assert bad.status_code == 401
            assert "WWW-Authenticate" in bad.headers
            in_query = await raw.post(f"/mcp?api_key={key}", json=INITIALIZE, headers=ACCEPT)
            assert in_query.status_code in {400, 401}
            in_query_too = await raw.post(
                f"/mcp?access_token={key}", json=INITIALIZE, headers={**ACCEPT, "Authorization": f"Bearer {key}"}
            )
            assert in_query_too.status_code in {400, 401}
        for mode in ERAS:
            async with connect(server.url, key, mode=mode) as client:
                created = ok(await client.call_tool("create_note", {"title": "keyed", "body": mode}))
                assert created["owner"] == "alice"
                ok(await client.call_tool("get_note", {"note_id": created["id"]}))
    assert server.stop() == 0
    log = server.log.read_text()
    assert "auth" in log.lower()
    # A key is mcpd_<id>_<secret>; the secret itself may contain "_", so split off only the first two parts.
    for secret in (key, bad_key, key.split("_", 2)[2], bad_key.split("_", 2)[2]):
        assert secret not in log
