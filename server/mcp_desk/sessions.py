"""Stateful Streamable HTTP sessions: owned by the principal that opened them, capped per principal.

What the SDK (mcp 2.3.0) already does, and we rely on: session ids are `uuid4().hex` (122 random bits
from the OS CSPRNG); a session is bound to the (client_id, issuer, subject) of the token that opened
it and any other credential gets 404 exactly as for an unknown id; the global cap (`max_sessions`,
503) and idle expiry (`session_idle_timeout`, then 404). What we add: a per-principal cap (429 +
Retry-After), and a log filter, because the SDK logs whole session ids at info level.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, AuthorizationContext, authorization_context
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER, StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from starlette.types import Receive, Scope, Send

from mcp_desk.transport_guards import send_error

SDK_SESSION_LOGGERS = ("mcp.server.streamable_http_manager", "mcp.server.streamable_http")
_SESSION_ID = re.compile(r"\b([0-9a-f]{8})[0-9a-f]{16,56}\b")

log = structlog.get_logger()
# A session's end: how long it lasted (seconds) and the protocol version its requests carried.
SessionEnded = Callable[[float, str], None]


@dataclass
class _Opened:
    started: float
    protocol_version: str = ""
    established: bool = False  # a request came back with the session's id


class OwnedSessionManager(StreamableHTTPSessionManager):
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
        if not opening:
            self._seen(scope, requestor)
        await super()._handle_stateful_request(scope, receive, send)

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
        if scope["method"] == "DELETE" and self._session_owners.get(session_id) == requestor:
            self._ended(session_id)

    def _ended(self, session_id: str) -> None:
        opened = self._opened.pop(session_id, None)
        if opened is not None and opened.established and self.on_session_end is not None:
            self.on_session_end(time.monotonic() - opened.started, opened.protocol_version)

    def _admit_session(self, requestor: AuthorizationContext | None) -> StreamableHTTPServerTransport | None:
        # Re-checked under the SDK's creation lock, so concurrent openings cannot overshoot the cap (→ SDK's 503).
        if requestor is not None and self.sessions_of(requestor) >= self.max_sessions_per_principal:
            return None
        transport = super()._admit_session(requestor)
        if transport is not None and transport.mcp_session_id is not None:
            self._opened[transport.mcp_session_id] = _Opened(started=time.monotonic())
        return transport

    async def _discard_session(self, session_id: str, transport: StreamableHTTPServerTransport) -> None:
        # Every way a session ends passes here (DELETE, idle expiry, crash, a refused opening request).
        self._ended(session_id)
        await super()._discard_session(session_id, transport)

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


def mask_session_ids(text: str) -> str:
    """Keep the first 8 hex digits of anything shaped like a session id: enough to correlate, not to reuse."""
    return _SESSION_ID.sub(lambda m: f"{m[1]}…", text)


class SessionIdFilter(logging.Filter):
    """Rewrites SDK log records so whole session ids never reach a log sink."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask ids in the rendered message; always keeps the record."""
        message = record.getMessage()
        masked = mask_session_ids(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def install_session_id_filter() -> None:
    """Attach SessionIdFilter to the SDK loggers that print session ids (idempotent)."""
    for name in SDK_SESSION_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, SessionIdFilter) for f in logger.filters):
            logger.addFilter(SessionIdFilter())
