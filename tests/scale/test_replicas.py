"""Two real `mcp-desk http` replicas on one SQLite file and one Redis, directly and behind a real HAProxy."""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import ok
from tests.e2e.conftest import HttpServer, launch
from tests.e2e.support import Era, connect, http_client_for, log_lines
from tests.redis_support import REDIS_URL, own_prefix
from tests.scale.haproxy_support import HAPROXY_CFG, haproxy_binary, running_haproxy

pytestmark = pytest.mark.anyio


@dataclass
class Pair:
    """Two replicas, `a` and `b`, sharing storage and Redis."""

    a: HttpServer
    b: HttpServer

    def served(self) -> Counter[str]:
        """Tool calls finished per replica id, read from both logs."""
        lines = [*log_lines(self.a.log), *log_lines(self.b.log)]
        return Counter(line["replica"] for line in lines if line.get("event") == "tool_call_finished")


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """Started once for this module (a replica takes seconds to start on a busy machine)."""
    with own_prefix() as prefix:
        yield from _started(tmp_path_factory.mktemp("replicas"), prefix)


def _started(tmp_path: Path, redis_prefix: str) -> Iterator[Pair]:
    def start(name: str) -> HttpServer:
        return launch(
            tmp_path,
            name,
            MCP_DESK_REDIS_URL=REDIS_URL,
            MCP_DESK_REDIS_KEY_PREFIX=redis_prefix,
            MCP_DESK_REPLICA_ID=name,
            MCP_DESK_AUDIT_LOG_PATH=str(tmp_path / f"audit-{name}.jsonl"),
        )

    a = start("replica-a")
    try:
        b = start("replica-b")
    except BaseException:
        a.kill()
        raise
    yield Pair(a=a, b=b)
    for server in (a, b):
        server.kill()


@asynccontextmanager
async def connect_with(url: str, *, mode: Era, **options: Any) -> AsyncIterator[Client]:
    """The official client over real Streamable HTTP, with client options (a message handler)."""
    async with (
        http_client_for() as http,
        Client(streamable_http_client(url, http_client=http), mode=mode, **options) as client,
    ):
        yield client


@pytest.fixture
def balanced(replicas: Pair, tmp_path: Path) -> Iterator[tuple[Pair, str]]:
    """The replicas behind a real HAProxy running the shipped configuration; yields them and its /mcp URL."""
    with running_haproxy([("replica-a", replicas.a), ("replica-b", replicas.b)], tmp_path) as url:
        yield replicas, url


def test_the_shipped_haproxy_configuration_is_valid() -> None:
    done = subprocess.run(
        [haproxy_binary(), "-c", "-f", str(HAPROXY_CFG)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text = HAPROXY_CFG.read_text()
    assert "stick store-response res.hdr(mcp-session-id)" in text
    assert "stick match req.hdr(mcp-session-id)" in text
    assert "option httpchk GET /health/ready" in text


@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")  # the handshake-era client API
async def test_a_handshake_session_sticks_to_one_replica_and_stateless_calls_spread(
    balanced: tuple[Pair, str],
) -> None:
    pair, balancer = balanced
    before = pair.served()
    async with connect(balancer, mode="legacy") as session:
        for n in range(6):
            ok(await session.call_tool("create_note", {"title": f"sticky {n}", "body": "b"}))
    sticky = pair.served() - before
    assert sorted(sticky.values()) == [6]  # every call of the session on one replica (another would 404)

    async with connect(balancer, mode="2026-07-28") as client:
        for n in range(8):
            ok(await client.call_tool("create_note", {"title": f"stateless {n}", "body": "b"}))
    spread = pair.served() - sticky - before
    assert sum(spread.values()) == 8
    assert set(spread) == {"replica-a", "replica-b"}


async def test_a_session_id_unknown_to_a_replica_is_404_so_the_client_starts_again(replicas: Pair) -> None:
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    tools = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
    async with httpx.AsyncClient(timeout=10) as http:
        created = await http.post(f"http://127.0.0.1:{replicas.a.port}/mcp", json=initialize, headers=headers)
        session = created.headers["mcp-session-id"]
        elsewhere = await http.post(
            f"http://127.0.0.1:{replicas.b.port}/mcp", json=tools, headers={**headers, "Mcp-Session-Id": session}
        )

    assert created.status_code == 200
    assert elsewhere.status_code == 404


@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")  # the handshake-era client API
async def test_subscribers_on_replica_a_hear_a_ticket_changed_through_replica_b_in_both_eras(replicas: Pair) -> None:
    a_url, b_url = replicas.a.url, replicas.b.url
    received: list[str] = []
    got = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            received.append(str(message.params.uri))
            got.set()

    async with connect(b_url, mode="2026-07-28") as writer:
        ticket = ok(await writer.call_tool("create_ticket", {"title": "x", "description": "d"}))
        uri = f"ticket://{ticket['id']}"
        async with connect_with(a_url, mode="legacy", message_handler=on_message) as legacy:
            await legacy.subscribe_resource(uri)
            async with connect(a_url, mode="2026-07-28") as modern, modern.listen(resource_subscriptions=[uri]) as sub:
                ok(await writer.call_tool("comment_ticket", {"ticket_id": ticket["id"], "body": "hi"}))
                with anyio.fail_after(10):
                    event = await sub.__anext__()
                    await got.wait()

    assert getattr(event, "uri", None) == uri
    assert received == [uri]
