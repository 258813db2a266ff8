"""Stateful Streamable HTTP sessions: owned by the principal that opened them, capped per principal.

What the SDK (mcp 2.3.0) already does, and we rely on: session ids are `uuid4().hex` (122 random bits
from the OS CSPRNG); a session is bound to the (client_id, issuer, subject) of the token that opened
it and any other credential gets 404 exactly as for an unknown id; the global cap (`max_sessions`,
503) and idle expiry (`session_idle_timeout`, then 404). What we add: a per-principal cap (429 +
Retry-After). The SDK logs whole session ids at info level; `mcp_desk.logging` shortens them.
"""

from __future__ import annotations

from typing import Any

import structlog
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, AuthorizationContext, authorization_context
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER, StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import Receive, Scope, Send

from mcp_desk.transport_guards import send_error

log = structlog.get_logger()


class OwnedSessionManager(StreamableHTTPSessionManager):
    """The SDK's session manager plus a cap on the sessions one principal may hold open."""

    def __init__(self, app: Server[Any], *, max_sessions_per_principal: int, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.max_sessions_per_principal = max_sessions_per_principal

    @property
    def open_sessions(self) -> int:
        """How many sessions are open now (for the `mcp_desk_sessions_active` gauge)."""
        return len(self._server_instances)

    def sessions_of(self, requestor: AuthorizationContext | None) -> int:
        """How many open sessions `requestor` owns."""
        return sum(1 for owner in self._session_owners.values() if owner == requestor)

    async def _handle_stateful_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        requestor = _requestor(scope)
        opening = not any(k == MCP_SESSION_ID_HEADER.encode() for k, _ in scope["headers"])
        if opening and requestor is not None and self.sessions_of(requestor) >= self.max_sessions_per_principal:
            await self._refuse(send)
            return
        await super()._handle_stateful_request(scope, receive, send)

    def _admit_session(self, requestor: AuthorizationContext | None) -> StreamableHTTPServerTransport | None:
        # Re-checked under the SDK's creation lock, so concurrent openings cannot overshoot the cap (→ SDK's 503).
        if requestor is not None and self.sessions_of(requestor) >= self.max_sessions_per_principal:
            return None
        return super()._admit_session(requestor)

    async def _refuse(self, send: Send) -> None:
        log.warning("session_limit_reached", per_principal=self.max_sessions_per_principal)
        message = "Too many open sessions for this principal; close one (DELETE) or let it expire"
        await send_error(send, 429, message, headers=[("Retry-After", "60")])


def _requestor(scope: Scope) -> AuthorizationContext | None:
    user = scope.get("user")
    return authorization_context(user) if isinstance(user, AuthenticatedUser) else None


def session_manager(
    server: Server[Any],
    *,
    max_sessions: int,
    max_sessions_per_principal: int,
    idle_seconds: float,
    max_request_body_bytes: int,
) -> OwnedSessionManager:
    """The `/mcp` session manager; Host/Origin are checked by transport_guards (the SDK's check is a prefix match)."""
    return OwnedSessionManager(
        server,
        max_sessions_per_principal=max_sessions_per_principal,
        max_sessions=max_sessions,
        session_idle_timeout=idle_seconds,
        max_request_body_size=max_request_body_bytes,
        security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
