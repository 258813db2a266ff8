"""ASGI pre-check: answer 429 + Retry-After for a principal already over its limit, before the body is read.

Only requests of the stateless 2026-07-28 era carry the routing headers (`Mcp-Method`,
`Mcp-Name`, `MCP-Protocol-Version`) that say "this is a tools/call of tool X" without parsing
the body; for those, a principal whose minute is already spent is answered here. Anything else
(no headers, other methods, unknown principal) passes through untouched, and the RateLimit guard
stays the one that counts and decides. Nothing is counted here: a request refused by this check
never reaches the guard, so the minute it is refused in is already exhausted.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from server.errors import RateLimited
from server.policy.ratelimit import RateLimit

# The ASGI types, spelled like Starlette's so any ASGI app fits, without importing a web framework here.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

METHOD_HEADER = b"mcp-method"
NAME_HEADER = b"mcp-name"
VERSION_HEADER = b"mcp-protocol-version"
STATELESS_VERSIONS = frozenset({b"2026-07-28"})


def _ignore(principal_id: str, refusal: RateLimited) -> None:
    """Default hook: do nothing."""


class RateLimitPrecheck:
    """ASGI middleware: 429 before the body for a tools/call from a principal over its minute."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limiter: RateLimit,
        principal_of: Callable[[Scope], str | None],
        on_refused: Callable[[str, RateLimited], None] = _ignore,
    ) -> None:
        """Wrap `app`; `principal_of` reads the authenticated principal id from the scope (None: unknown)."""
        self.app = app
        self.limiter = limiter
        self.principal_of = principal_of
        self.on_refused = on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse early when the headers say enough, else pass the request on."""
        refusal = await self._refusal(scope)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        await _too_many_requests(send, refusal)

    async def _refusal(self, scope: Scope) -> RateLimited | None:
        if scope.get("type") != "http" or scope.get("method") != "POST":
            return None
        headers = dict(scope.get("headers") or [])
        if headers.get(VERSION_HEADER) not in STATELESS_VERSIONS or headers.get(METHOD_HEADER) != b"tools/call":
            return None
        principal = self.principal_of(scope)
        if principal is None:
            return None
        tool = headers.get(NAME_HEADER, b"").decode("latin-1") or None
        refusal = await self.limiter.refusal(principal, tool)
        if refusal is not None:
            self.on_refused(principal, refusal)
        return refusal


async def _too_many_requests(send: Send, refusal: RateLimited) -> None:
    body = orjson.dumps(
        {"error": refusal.code, "message": refusal.public, "retry_after_seconds": refusal.retry_after_seconds}
    )
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(int(refusal.retry_after_seconds)).encode()),
    ]
    await send({"type": "http.response.start", "status": 429, "headers": headers})
    await send({"type": "http.response.body", "body": body})
