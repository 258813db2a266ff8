"""`mcp-desk stdio` as a real subprocess, the way Claude Desktop starts it."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from tests.conftest import ok, readme_claude_config
from tests.e2e.conftest import MCP_DESK, base_env

pytestmark = pytest.mark.anyio


def params(tmp_path: Path, **env: str) -> StdioServerParameters:
    return StdioServerParameters(command=MCP_DESK, args=["stdio"], env=base_env(tmp_path, **env), cwd="/")


async def test_a_stdio_client_lists_and_calls_tools_and_gets_a_protocol_error_for_unknown_ones(tmp_path: Path) -> None:
    async with Client(params(tmp_path)) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"create_note", "transition_ticket", "search_docs"} <= names
        created = ok(await client.call_tool("create_note", {"title": "from stdio", "body": "b"}))
        assert ok(await client.call_tool("get_note", {"note_id": created["id"]}))["title"] == "from stdio"
        with pytest.raises(MCPError):
            await client.call_tool("rm_rf", {})


async def test_initialize_is_answered_while_storage_is_still_opening_and_the_first_call_waits_for_it(
    tmp_path: Path,
) -> None:
    """The database is held locked by another writer: the handshake completes, the first tool call waits."""
    database = tmp_path / "data" / "mcp-desk.db"
    database.parent.mkdir(parents=True)
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("PRAGMA journal_mode = WAL")
    holder.execute("BEGIN EXCLUSIVE")  # the server's migrations wait for this lock (its busy timeout is 10 s)
    released = False
    try:
        with anyio.fail_after(30):
            async with Client(params(tmp_path)) as client:
                assert client.server_info is not None  # initialize answered: storage cannot be open yet
                holder.execute("COMMIT")
                released = True
                created = ok(await client.call_tool("create_note", {"title": "after open", "body": "b"}))
                assert ok(await client.call_tool("get_note", {"note_id": created["id"]}))["title"] == "after open"
    finally:
        if not released:
            holder.execute("ROLLBACK")
        holder.close()


async def test_the_readme_claude_desktop_entry_starts_a_working_server(tmp_path: Path) -> None:
    entry = readme_claude_config(tmp_path / "data")["mcpServers"]["mcp-desk"]
    assert Path(entry["command"]).exists()  # noqa: ASYNC240  # one stat before the test starts
    parameters = StdioServerParameters(command=entry["command"], args=entry["args"], env=entry.get("env"), cwd="/")
    async with Client(parameters) as client:
        assert client.server_info is not None
        assert client.server_info.name == "mcp-desk"
        found = ok(await client.call_tool("search_docs", {"query": "password reset"}))
        assert found["items"]


def test_stdout_carries_only_protocol_messages_and_closing_stdin_exits_cleanly(tmp_path: Path) -> None:
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    lines = [json.dumps(init), json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"})]
    lines.append(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
    done = subprocess.run(
        [MCP_DESK, "stdio"],
        input=("\n".join(lines) + "\n").encode(),
        env=base_env(tmp_path),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    replies = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert [reply["id"] for reply in replies] == [1, 2]
    assert b"storage_opened" in done.stderr


def test_sigterm_ends_an_idle_stdio_server_with_exit_code_0(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [MCP_DESK, "stdio"],
        env=base_env(tmp_path),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    for line in process.stderr:
        if b"docs_indexed" in line:
            break
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=40) == 0
    process.stdin.close()  # type: ignore[union-attr]  # opened with PIPE
    process.stdout.close()  # type: ignore[union-attr]  # opened with PIPE
    process.stderr.close()
