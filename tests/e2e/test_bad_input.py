"""Garbage over real stdio and real HTTP never crashes the server, never corrupts data, and it keeps answering."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.conftest import ok
from tests.e2e.conftest import MCP_DESK, StartHttp, base_env
from tests.e2e.support import connect
from tests.httpsec_support import send_while_reading

pytestmark = pytest.mark.anyio

INIT_PARAMS = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
HUGE_ID = 10**400


def call(request_id: Any, name: str, arguments: Any) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }


# Each is one line on the wire; none of them may stop the server.
GARBAGE: list[bytes] = [
    b"{not json",
    b"\xff\xfe\xc3\x28 invalid utf-8 \xed\xa0\x80",
    b'{"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "create_note", "arguments": '
    b'{"title": "\xff\xfe", "body": "x"}}}',
    b"[]",
    b"null",
    b'"just a string"',
    b'{"jsonrpc": "2.0", "id": ' + str(HUGE_ID).encode() + b', "method": "tools/list"}',
    json.dumps({"jsonrpc": "2.0", "id": 3.5, "method": "tools/list"}).encode(),
    json.dumps({"jsonrpc": "2.0", "id": {"a": 1}, "method": "tools/list"}).encode(),
    json.dumps({"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": "not an object"}).encode(),
    json.dumps({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": 42}}).encode(),
    json.dumps(call(10, "create_note", ["title", "body"])).encode(),
    json.dumps(call(11, "create_note", {"title": 5, "body": None})).encode(),
    json.dumps(call(12, "create_note", {"title": "x" * 100_000, "body": "b"})).encode(),
    json.dumps(call(13, "create_note", {"title": "t", "body": "b" * (70 * 1024)})).encode(),
    json.dumps(call(14, "create_note", {"title": "t\x00\x07", "body": "b", "tags": ["x"] * 500})).encode(),
    json.dumps(call(15, "list_notes", {"limit": 10**12, "cursor": "\u202e" * 50})).encode(),
    json.dumps(call(16, "get_note", {"note_id": "../../etc/passwd"})).encode(),
    json.dumps({"jsonrpc": "2.0", "id": 17, "method": "no/such/method"}).encode(),
    json.dumps({"jsonrpc": "1.0", "id": 18, "method": "tools/list"}).encode(),
    b"[" * 10_000 + b"]" * 10_000,
]


def rpc_line(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode() + b"\n"


def titles_in_database(tmp_path: Path) -> list[str]:
    """Note titles read straight from the SQLite file."""
    with sqlite3.connect(tmp_path / "data" / "mcp-desk.db") as db:
        return sorted(title for (title,) in db.execute("SELECT title FROM notes"))


def raw_post(port: int, session: str, body: bytes, *, chunked: bool = False) -> bytes:
    """A POST /mcp on the wire, with a Content-Length or as one big chunk."""
    head = (
        f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: application/json, text/event-stream\r\nmcp-session-id: {session}\r\n"
    ).encode()
    if chunked:
        return head + b"Transfer-Encoding: chunked\r\n\r\n" + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    return head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body


def test_garbage_over_stdio_never_stops_the_server_and_good_requests_still_work(tmp_path: Path) -> None:
    lines = [rpc_line({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INIT_PARAMS})]
    lines.append(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
    lines.append(rpc_line(call(2, "create_note", {"title": "before", "body": "kept"})))
    lines += [line + b"\n" for line in GARBAGE]
    lines.append(rpc_line(call(99, "create_note", {"title": "after", "body": "kept too"})))
    done = subprocess.run(
        [MCP_DESK, "stdio"],
        input=b"".join(lines),
        env=base_env(tmp_path),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    replies = [json.loads(line) for line in done.stdout.decode().splitlines()]
    by_id = {json.dumps(reply.get("id")): reply for reply in replies}
    assert not by_id["2"]["result"].get("isError")
    assert not by_id["99"]["result"].get("isError")
    assert "7" not in by_id  # invalid UTF-8: dropped like any unparsable line, never stored with U+FFFD
    assert titles_in_database(tmp_path) == ["after", "before"]
    for request_id in (10, 11, 12, 13, 14, 15, 16):  # bad arguments: answered, as a tool error or a protocol error
        reply = by_id[str(request_id)]
        assert reply.get("error") or reply["result"]["isError"], reply
    assert by_id["17"]["error"]["code"] == -32601
    assert "Traceback" not in done.stdout.decode()


async def test_garbage_over_http_gets_clean_answers_a_5_mib_body_gets_413_and_data_is_intact(
    start_http: StartHttp, tmp_path: Path
) -> None:
    server = start_http(MCP_DESK_RATE_LIMIT_RPM="10000")
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    with anyio.fail_after(120):
        async with connect(server.url) as client:
            kept = ok(await client.call_tool("create_note", {"title": "before", "body": "kept"}))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=60) as raw:
            for body in GARBAGE:
                response = await raw.post("/mcp", content=body, headers=headers)
                assert 400 <= response.status_code < 500 or response.status_code == 200, response.status_code
            initialized = await raw.post(
                "/mcp",
                json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INIT_PARAMS},
                headers=headers,
            )
            assert initialized.status_code == 200
            session = {**headers, "mcp-session-id": initialized.headers["mcp-session-id"]}
            for body in GARBAGE:
                response = await raw.post("/mcp", content=body, headers=session)
                assert response.status_code < 500, (body[:80], response.status_code, response.text[:300])
            huge = b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"x":"' + b"a" * (5 * 2**20) + b'"}}'
            for chunked in (False, True):
                request = raw_post(server.port, session["mcp-session-id"], huge, chunked=chunked)
                answer = await send_while_reading(server.port, request)
                assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        async with connect(server.url) as client:
            assert ok(await client.call_tool("get_note", {"note_id": kept["id"]}))["body"] == "kept"
            assert ok(await client.call_tool("search_notes", {"query": "kept"}))["items"]
    assert titles_in_database(tmp_path) == ["before"]
    async with httpx.AsyncClient() as sidecar:
        health = await sidecar.get(f"http://127.0.0.1:{server.health_port}/health", timeout=30)
    assert health.status_code == 200
    assert server.stop() == 0
