"""Keys an operator manages while the server runs: `keys create --append`, `keys list`, `keys revoke`,
and the one admin key a first start creates when asked to."""

from __future__ import annotations

import json
import re
from pathlib import Path

import anyio
import httpx
import pytest

from tests.conftest import ok
from tests.e2e.conftest import StartHttp
from tests.e2e.support import INITIALIZE_HEADERS, cli, connect, initialize_request

pytestmark = pytest.mark.anyio

BLOCK = re.compile(r"MCP-DESK FIRST START: ADMIN API KEY.*?\n  key:\s+(mcpd_\S+)\n", re.DOTALL)


async def _status(port: int, key: str | None) -> int:
    headers = dict(INITIALIZE_HEADERS)
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as raw:
        return (await raw.post("/mcp", json=initialize_request(), headers=headers)).status_code


async def test_a_key_appended_by_the_cli_works_and_a_revoked_key_is_refused_by_the_running_server(
    start_http: StartHttp, tmp_path: Path
) -> None:
    keys = tmp_path / "api_keys"
    env = {"MCP_DESK_API_KEYS_FILE": str(keys)}
    first = cli(tmp_path, "keys", "create", "--principal", "ops", "--role", "admin", "--json", "--append", **env)
    assert first.returncode == 0, first.stderr
    assert keys.stat().st_mode & 0o777 == 0o600
    server = start_http(**env)
    later = cli(tmp_path, "keys", "create", "--principal", "alice", "--role", "agent", "--json", "--append", **env)
    alice = json.loads(later.stdout)["key"]
    listed = json.loads(cli(tmp_path, "keys", "list", "--json", **env).stdout)
    assert [(k["principal"], k["role"]) for k in listed] == [("ops", "admin"), ("alice", "agent")]
    with anyio.fail_after(60):
        async with connect(server.url, alice) as client:
            assert ok(await client.call_tool("create_note", {"title": "t", "body": "b"}))["owner"] == "alice"
        assert await _status(server.port, None) == 401
        revoked = cli(tmp_path, "keys", "revoke", alice[5:17], **env)
        assert revoked.returncode == 0, revoked.stderr
        assert await _status(server.port, alice) == 401
        assert await _status(server.port, json.loads(first.stdout)["key"]) == 200
    assert server.stop() == 0


async def test_a_first_start_prints_one_admin_key_once_and_a_restart_prints_none(
    start_http: StartHttp, tmp_path: Path
) -> None:
    keys = tmp_path / "data" / "api_keys"
    env = {"MCP_DESK_API_KEYS_FILE": str(keys), "MCP_DESK_BOOTSTRAP_ADMIN_KEY": "true"}
    keys.parent.mkdir()
    server = start_http(**env)
    printed = BLOCK.findall(server.log.read_text())
    assert len(printed) == 1
    key = printed[0]
    assert key not in keys.read_text()
    with anyio.fail_after(60):
        async with connect(server.url, key) as client:
            assert ok(await client.call_tool("create_ticket", {"title": "t", "description": "d"}))["id"]
        assert await _status(server.port, None) == 401
    assert server.stop() == 0
    again = start_http(**env)
    assert "FIRST START" not in again.log.read_text()
    with anyio.fail_after(60):
        assert await _status(again.port, key) == 200
    assert again.stop() == 0
