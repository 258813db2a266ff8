"""Every use of the MCP SDK's private API, one small function or hook each (written against `mcp` 2.3.0).

The rest of the package uses only the SDK's public API. Where 2.3.0 offers no public way to do what we
need, the private access lives here with the reason, and `tests/test_sdk.py` checks each one against the
installed SDK, so an upgrade that moves or renames one fails there, loudly, instead of somewhere deep.
"""

from __future__ import annotations

from typing import Any

from mcp.server._otel import OpenTelemetryMiddleware
from mcp.server.auth.middleware.bearer_auth import AuthorizationContext
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.types import Receive, Scope, Send

__all__ = ["HookedSessionManager", "connection_of", "is_span_middleware"]


def connection_of(ctx: ServerRequestContext[Any]) -> Connection:
    """The connection behind a request: state that outlives one request (subscriptions, log level) hangs on it.

    mcp 2.3.0 hands lowlevel handlers a `ServerRequestContext` whose `session` is a per-request
    `ServerSession`; only the (unused) high-level `Context` exposes `.connection`, so the session's
    `_connection` attribute is read.
    """
    connection: Connection = ctx.session._connection
    return connection


def is_span_middleware(middleware: object) -> bool:
    """Whether `middleware` is the SDK's own span middleware (one OpenTelemetry server span per inbound message).

    mcp 2.3.0 puts an `OpenTelemetryMiddleware` into every `Server.middleware` list but defines it only in
    the private `mcp.server._otel`; the app finds it with this, to leave it out (tracing off: without an
    exporter it only allocates) or to wrap it with our header parent and attributes (tracing on).
    """
    return isinstance(middleware, OpenTelemetryMiddleware)


class HookedSessionManager(StreamableHTTPSessionManager):
    """The SDK's session manager with two public hooks, and the open-session facts it keeps privately.

    mcp 2.3.0 has no extension point for refusing a request before the SDK handles it, for vetoing a
    new session under its creation lock, or for learning when a session opens and ends:
    `_handle_stateful_request`, `_admit_session` and `_discard_session` are overridden here (and only
    here) to call `refuse()`, `admits()`, `opened()` and `closed()`. It keeps open sessions in
    `_server_instances` and their owners in `_session_owners`, read by `open_sessions`, `owners()` and
    `owner_of()`.
    """

    async def refuse(self, scope: Scope, send: Send) -> bool:
        """Answer `scope` here instead of the SDK (True: answered); the default refuses nothing."""
        return False

    def admits(self, requestor: AuthorizationContext | None) -> bool:
        """Whether a new session for `requestor` may open (checked under the SDK's lock); default: yes."""
        return True

    def opened(self, session_id: str) -> None:
        """A new session was admitted (called under the SDK's creation lock); default: nothing."""

    def closed(self, session_id: str) -> None:
        """A session ends (DELETE, idle expiry, a crash, a refused opening request); default: nothing."""

    @property
    def open_sessions(self) -> int:
        """How many sessions are open now."""
        return len(self._server_instances)

    def owners(self) -> list[AuthorizationContext]:
        """The owner of every open session that has one."""
        return list(self._session_owners.values())

    def owner_of(self, session_id: str) -> AuthorizationContext | None:
        """The owner of the open session `session_id`, if it has one."""
        return self._session_owners.get(session_id)

    async def _handle_stateful_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not await self.refuse(scope, send):
            await super()._handle_stateful_request(scope, receive, send)

    def _admit_session(self, requestor: AuthorizationContext | None) -> StreamableHTTPServerTransport | None:
        if not self.admits(requestor):
            return None
        transport = super()._admit_session(requestor)
        if transport is not None and transport.mcp_session_id is not None:
            self.opened(transport.mcp_session_id)
        return transport

    async def _discard_session(self, session_id: str, transport: StreamableHTTPServerTransport) -> None:
        self.closed(session_id)
        await super()._discard_session(session_id, transport)
