"""Report refused credentials: every 401 (and scope 403) the bearer middleware answers on /mcp.

The SDK's `RequireAuthMiddleware` answers 401 both when no bearer token came and when the verifier
returned None, so watching the response status is the one place that sees every refusal, missing
credentials included (a verifier is never called for those). The reason is derived from the shape of
the Authorization header only: the credential itself never reaches `on_failure`, a log or the audit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ReportAuthFailures", "failure_reason"]

AuthFailureHook = Callable[[str], Awaitable[None]]


def failure_reason(scope: Scope, status: int) -> str:
    """A fixed, public reason: missing_credentials, unsupported_scheme, invalid_credentials or insufficient_scope."""
    if status == 403:
        return "insufficient_scope"
    values = [v for k, v in scope.get("headers", []) if k == b"authorization"]
    if not values or not values[0].strip():
        return "missing_credentials"
    if not values[0].lower().startswith(b"bearer "):
        return "unsupported_scheme"
    return "invalid_credentials"


class ReportAuthFailures:
    """ASGI middleware around the protected endpoint: calls `on_failure(reason)` once a refusal was sent."""

    def __init__(self, app: ASGIApp, *, on_failure: AuthFailureHook) -> None:
        """Wrap `app` (the output of `mcp_desk.auth.protect`)."""
        self.app = app
        self.on_failure = on_failure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request through, noting whether the answer was an authentication refusal."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused: int | None = None

        async def watch(message: Message) -> None:
            nonlocal refused
            if message["type"] == "http.response.start" and _is_auth_refusal(message):
                refused = int(message["status"])
            await send(message)

        await self.app(scope, receive, watch)
        if refused is not None:
            await self.on_failure(failure_reason(scope, refused))


def _is_auth_refusal(message: Message) -> bool:
    """401, or 403 carrying a Bearer challenge (RFC 6750 insufficient_scope); other 403s are not about credentials."""
    status = message.get("status")
    if status == 401:
        return True
    headers = dict(message.get("headers") or [])
    return status == 403 and headers.get(b"www-authenticate", b"").lower().startswith(b"bearer ")
