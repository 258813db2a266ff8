"""A small real HTTP stack for the HTTP-security tests: lowlevel Server + our session manager, auth and guards.

Once the application's own `http_app` exists, these tests can drive it instead; the wiring here is the
same one app.py is asked to use (see docs/http-security.md).
"""

from __future__ import annotations

import hmac
import itertools
import json
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import mcp_types as types
import uvicorn
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from mcp_desk.auth import HttpAuth, protect
from mcp_desk.config import Settings
from mcp_desk.sessions import OwnedSessionManager, session_manager
from mcp_desk.transport_guards import harden, uvicorn_options

PROTOCOL = "2025-06-18"
ACCEPT = "application/json, text/event-stream"


@dataclass(frozen=True)
class Key:
    """A key record as the key store hands it out."""

    principal: str
    role: str
    key_id: str


class MemoryKeyStore:
    """Plain keys in memory, compared in constant time (stands in for server/mcp_desk/policy/keys.py)."""

    def __init__(self, keys: Mapping[str, Key]) -> None:
        self._keys = dict(keys)

    def verify(self, presented: str) -> Key | None:
        """The record for `presented`, or None."""
        found = None
        for key, record in self._keys.items():
            if hmac.compare_digest(key.encode(), presented.encode()):
                found = record
        return found


async def _list_tools(
    ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
) -> types.ListToolsResult:
    schema = {"type": "object", "properties": {"value": {"type": "string"}}}
    return types.ListToolsResult(
        tools=[
            types.Tool(name="echo", description="Echo a value.", input_schema=schema),
            types.Tool(name="whoami", description="Who is calling.", input_schema={"type": "object"}),
        ]
    )


async def _call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
    token = get_access_token()
    caller = (token.claims or {}).get("principal") if token else None
    args = params.arguments or {}
    if params.name == "echo":
        await anyio.lowlevel.checkpoint()  # concurrent calls interleave here
        data: dict[str, Any] = {"value": args.get("value"), "caller": caller}
    elif params.name == "whoami":
        data = {"caller": caller}
    else:
        raise ValueError(f"unknown tool {params.name}")
    return types.CallToolResult(content=[types.TextContent(text=json.dumps(data))], structured_content=data)


def build_app(settings: Settings, *, auth: HttpAuth | None = None) -> tuple[ASGIApp, OwnedSessionManager]:
    """The `/mcp` stack the way app.py composes it: guards → auth → owned session manager → lowlevel Server."""
    server: Server[Any] = Server("httpsec-test", on_list_tools=_list_tools, on_call_tool=_call_tool)
    manager = session_manager(
        server,
        max_sessions=settings.max_sessions,
        max_sessions_per_principal=settings.max_sessions_per_principal,
        idle_seconds=settings.session_idle_seconds,
        max_request_body_bytes=settings.max_request_body_bytes,
    )
    endpoint: ASGIApp = StreamableHTTPASGIApp(manager)
    routes: list[BaseRoute] = [Route("/mcp", endpoint=protect(endpoint, auth) if auth else endpoint)]
    if auth is not None:
        routes += auth.metadata_routes
    app = Starlette(routes=routes, lifespan=lambda _: manager.run())
    return harden(app, settings), manager


@asynccontextmanager
async def serving(app: ASGIApp, settings: Settings, *, access_log: bool = False) -> AsyncIterator[str]:
    """Run `app` on a real uvicorn bound to 127.0.0.1 on a free port; yields the base URL."""
    options = uvicorn_options(settings) | {"access_log": access_log}
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on", **options)
    server = uvicorn.Server(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        await eventually(lambda: server.started)
        port = server.servers[0].sockets[0].getsockname()[1]
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True


async def eventually(condition: Callable[[], bool]) -> None:
    """Poll `condition` (state owned by a server we do not control) until true; fails after 10 s."""
    with anyio.fail_after(10):
        for _ in itertools.count():
            if condition():
                return
            await anyio.sleep(0.02)


def headers(*, token: str | None = None, session: str | None = None, **extra: str) -> dict[str, str]:
    """Request headers for a JSON-RPC POST."""
    out = {"accept": ACCEPT, "content-type": "application/json"}
    if token is not None:
        out["authorization"] = f"Bearer {token}"
    if session is not None:
        out["mcp-session-id"] = session
        out["mcp-protocol-version"] = PROTOCOL
    return out | extra


def messages(response: httpx.Response) -> list[Any]:
    """The JSON-RPC messages in a response, whether sent as JSON or as an SSE stream."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        return [
            json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:") and line[5:].strip()
        ]
    return [response.json()] if response.content else []


def initialize_body(request_id: int = 1) -> dict[str, Any]:
    """An initialize request."""
    params = {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    return {"jsonrpc": "2.0", "id": request_id, "method": "initialize", "params": params}


async def open_session(client: httpx.AsyncClient, *, token: str | None = None) -> str:
    """Initialize a session and send `notifications/initialized`; returns the session id."""
    response = await client.post("/mcp", json=initialize_body(), headers=headers(token=token))
    assert response.status_code == 200, response.text
    session = response.headers["mcp-session-id"]
    done = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    ack = await client.post("/mcp", json=done, headers=headers(token=token, session=session))
    assert ack.status_code == 202, ack.text
    return session


async def call_tool(
    client: httpx.AsyncClient, name: str, arguments: dict[str, Any], *, session: str, token: str | None = None
) -> httpx.Response:
    """POST a tools/call in `session`."""
    body = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": name, "arguments": arguments}}
    return await client.post("/mcp", json=body, headers=headers(token=token, session=session))


def port_of(base: str) -> int:
    """The port of a `http://127.0.0.1:PORT` base URL."""
    return int(base.rsplit(":", 1)[1])


async def send_while_reading(port: int, request: bytes) -> bytes:
    """Write a raw HTTP request in pieces while reading: the server may answer (413) before the body ends."""
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:

        async def write() -> None:
            for offset in range(0, len(request), 65536):
                try:
                    await stream.send(request[offset : offset + 65536])
                except (anyio.BrokenResourceError, anyio.ClosedResourceError, ConnectionError):
                    return

        async with anyio.create_task_group() as tg:
            tg.start_soon(write)
            with anyio.fail_after(10):
                answer = await stream.receive()
            tg.cancel_scope.cancel()
    return answer
