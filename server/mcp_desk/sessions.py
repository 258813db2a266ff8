"""Stateful Streamable HTTP sessions: owned by the principal that opened them, capped per principal.

What the SDK (mcp 2.3.0) already does, and we rely on: session ids are `uuid4().hex` (122 random bits
from the OS CSPRNG); a session is bound to the (client_id, issuer, subject) of the token that opened
it and any other credential gets 404 exactly as for an unknown id; the global cap (`max_sessions`,
503) and idle expiry (`session_idle_timeout`, then 404). What we add: a per-principal cap (429 +
Retry-After). The SDK logs whole session ids at info level; `mcp_desk.logging` shortens them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, AuthorizationContext, authorization_context
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from starlette.types import Scope, Send

from mcp_desk.sdk import HookedSessionManager
from mcp_desk.transport_guards import send_error

log = structlog.get_logger()
# A session's end: how long it lasted (seconds) and the protocol version its requests carried.
SessionEnded = Callable[[float, str], None]


@dataclass
class _Opened:
    started: float
    protocol_version: str = ""
    established: bool = False  # a request came back with the session's id


class OwnedSessionManager(HookedSessionManager):
    """The SDK's session manager plus a cap on the sessions one principal may hold open."""

    def __init__(
        self,
        app: Server[Any],
        *,
        max_sessions_per_principal: int,
        on_session_end: SessionEnded | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, **kwargs)
        self.max_sessions_per_principal = max_sessions_per_principal
        self.on_session_end = on_session_end
        self._opened: dict[str, _Opened] = {}

    def sessions_of(self, requestor: AuthorizationContext | None) -> int:
        """How many open sessions `requestor` owns."""
        return sum(1 for owner in self.owners() if owner == requestor)

    async def refuse(self, scope: Scope, send: Send) -> bool:
        """429 + Retry-After for a principal opening one session more than its cap."""
        requestor = _requestor(scope)
        opening = not any(k == MCP_SESSION_ID_HEADER.encode() for k, _ in scope["headers"])
        if opening and requestor is not None and self.sessions_of(requestor) >= self.max_sessions_per_principal:
            log.warning("session_limit_reached", per_principal=self.max_sessions_per_principal)
            message = "Too many open sessions for this principal; close one (DELETE) or let it expire"
            await send_error(send, 429, message, headers=[("Retry-After", "60")])
            return True
        if not opening:
            self._seen(scope, requestor)
        return False

    def admits(self, requestor: AuthorizationContext | None) -> bool:
        """Re-checked under the SDK's creation lock, so concurrent openings cannot overshoot the cap (→ 503)."""
        return requestor is None or self.sessions_of(requestor) < self.max_sessions_per_principal

    def opened(self, session_id: str) -> None:
        self._opened[session_id] = _Opened(started=time.monotonic())

    def closed(self, session_id: str) -> None:
        # Every way a session ends passes here (DELETE, idle expiry, crash, a refused opening request).
        self._ended(session_id)

    def _seen(self, scope: Scope, requestor: AuthorizationContext | None) -> None:
        """A request named a session: it is established and says its protocol version; its owner's DELETE ends it.

        The end of a DELETEd session is timed as the request arrives, so it is on /metrics by the time the
        client has its answer; sessions that end otherwise (idle expiry, a crash) are timed when discarded.
        """
        headers = dict(scope["headers"])
        session_id = headers.get(MCP_SESSION_ID_HEADER.encode(), b"").decode("latin-1")
        opened = self._opened.get(session_id)
        if opened is None:
            return
        opened.established = True
        opened.protocol_version = headers.get(MCP_PROTOCOL_VERSION_HEADER.encode(), b"").decode("latin-1")[:32]
        if scope["method"] == "DELETE" and self.owner_of(session_id) == requestor:
            self._ended(session_id)

    def _ended(self, session_id: str) -> None:
        opened = self._opened.pop(session_id, None)
        if opened is not None and opened.established and self.on_session_end is not None:
            self.on_session_end(time.monotonic() - opened.started, opened.protocol_version)


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
    on_session_end: SessionEnded | None = None,
) -> OwnedSessionManager:
    """The `/mcp` session manager; Host/Origin are checked by transport_guards (the SDK's check is a prefix match)."""
    return OwnedSessionManager(
        server,
        max_sessions_per_principal=max_sessions_per_principal,
        on_session_end=on_session_end,
        max_sessions=max_sessions,
        session_idle_timeout=idle_seconds,
        max_request_body_size=max_request_body_bytes,
        security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
