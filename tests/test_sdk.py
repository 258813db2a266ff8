"""The SDK's private API we rely on (mcp_desk.sdk) still exists in the installed SDK, with the same shape.

If one of these fails after an SDK upgrade, fix `mcp_desk/sdk.py` (or drop the access if the SDK now
offers a public way) before anything else.
"""

from __future__ import annotations

import inspect
from typing import Any

import mcp_types as types
import pytest
from mcp import Client
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

from mcp_desk.sdk import HookedSessionManager, connection_of, is_span_middleware

pytestmark = pytest.mark.anyio


def parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_the_session_manager_hooks_we_override_exist_with_their_signatures() -> None:
    assert parameters(StreamableHTTPSessionManager._handle_stateful_request) == ["self", "scope", "receive", "send"]
    assert parameters(StreamableHTTPSessionManager._admit_session) == ["self", "requestor"]
    assert parameters(StreamableHTTPSessionManager._discard_session) == ["self", "session_id", "transport"]
    assert inspect.iscoroutinefunction(StreamableHTTPSessionManager._handle_stateful_request)
    assert not inspect.iscoroutinefunction(StreamableHTTPSessionManager._admit_session)
    assert inspect.iscoroutinefunction(StreamableHTTPSessionManager._discard_session)


def test_the_session_manager_keeps_open_sessions_and_owners_where_we_read_them() -> None:
    manager = HookedSessionManager(Server("probe"))

    assert manager._server_instances == {}
    assert manager._session_owners == {}
    assert manager.open_sessions == 0
    assert manager.owners() == []
    assert manager.owner_of("0123456789abcdef0123456789abcdef") is None


def test_every_server_starts_with_the_sdks_span_middleware_which_we_recognise() -> None:
    """Tracing off leaves it out and tracing on wraps it: both find it by `is_span_middleware`."""
    middleware = Server("probe").middleware

    assert [is_span_middleware(m) for m in middleware] == [True]
    assert not is_span_middleware(object())


async def test_a_handlers_request_context_reaches_its_session_connection() -> None:
    """In the handshake era every request of one session sees the same connection."""
    seen: list[Connection] = []

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        seen.append(connection_of(ctx))
        return types.ListToolsResult(tools=[])

    async with Client(Server("probe", on_list_tools=list_tools), mode="legacy") as client:
        await client.list_tools()
        await client.list_tools()

    assert len(seen) == 2
    assert isinstance(seen[0], Connection)
    assert seen[0] is seen[1]
