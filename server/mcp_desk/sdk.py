"""Every use of the MCP SDK's private API, one small function or hook each (written against `mcp` 2.3.0).

The rest of the package uses only the SDK's public API. Where 2.3.0 offers no public way to do what we
need, the private access lives here with the reason, and `tests/test_sdk.py` checks each one against the
installed SDK, so an upgrade that moves or renames one fails there, loudly, instead of somewhere deep.
"""

from __future__ import annotations

from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthorizationContext
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.types import Receive, Scope, Send

__all__ = ["HookedSessionManager", "connection_of"]


def connection_of(ctx: ServerRequestContext[Any]) -> Connection:
    """The connection behind a request: state that outlives one request (subscriptions, log level) hangs on it.

    mcp 2.3.0 hands lowlevel handlers a `ServerRequestContext` whose `session` is a per-request
    `ServerSession`; only the (unused) high-level `Context` exposes `.connection`, so the session's
    `_connection` attribute is read.
    """
    connection: Connection = ctx.session._connection
    return connection


class HookedSessionManager(StreamableHTTPSessionManager):
    """The SDK's session manager with two public hooks, and the open-session facts it keeps privately.

    mcp 2.3.0 has no extension point for refusing a request before the SDK handles it, or for vetoing a
    new session under its creation lock: `_handle_stateful_request` and `_admit_session` are overridden
    here (and only here) to call `refuse()` and `admits()`. It keeps open sessions in `_server_instances`
    and their owners in `_session_owners`, read by `open_sessions` and `owners()`.
    """

    async def refuse(self, scope: Scope, send: Send) -> bool:
        """Answer `scope` here instead of the SDK (True: answered); the default refuses nothing."""
        return False

    def admits(self, requestor: AuthorizationContext | None) -> bool:
        """Whether a new session for `requestor` may open (checked under the SDK's lock); default: yes."""
        return True

    @property
    def open_sessions(self) -> int:
        """How many sessions are open now."""
        return len(self._server_instances)

    def owners(self) -> list[AuthorizationContext]:
        """The owner of every open session that has one."""
        return list(self._session_owners.values())

    async def _handle_stateful_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not await self.refuse(scope, send):
            await super()._handle_stateful_request(scope, receive, send)

    def _admit_session(self, requestor: AuthorizationContext | None) -> StreamableHTTPServerTransport | None:
        return super()._admit_session(requestor) if self.admits(requestor) else None
