"""Pure ASGI guards in front of `/mcp`: Host, Origin, query credentials, concurrency, body size and deadline.

`harden(app, settings)` composes them, outermost first:

1. QueryCredentialGuard  400 for `?token=`/`?api_key=`/...; blanks the query string before anything logs it
2. HostGuard             421 unless exactly one Host header parses strictly and is allowed (DNS rebinding)
3. OriginGuard           403 for a present Origin that is not allowed (browsers)
4. ConcurrencyLimit      503 + Retry-After beyond N requests in flight (before any body is buffered)
5. BodyGuard             413 over the byte cap (Content-Length or counted, chunked too), 408 past the deadline
6. EnvelopeGuard         400/-32600 for JSON that is not one JSON-RPC object with a string/integer id: the SDK
                         (2.3.0, session era) silently drops requests whose id is null/float/object/bool as if
                         they were notifications (202), and answers batches and bad envelopes with a pydantic
                         error that echoes the input back

Cheap header checks run first; the body is read only for requests that passed them, and at most
`max_concurrent_requests` bodies of at most `max_request_body_bytes` are buffered at once.
Header slowloris (a request line or headers trickled forever) happens before any ASGI app runs: that
needs the reverse proxy (nginx `client_header_timeout`) or uvicorn's own limits (`uvicorn_options`).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import anyio
import pydantic_core
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_desk.config import Settings
from mcp_desk.errors import jsonrpc_error, quote

log = structlog.get_logger()

CREDENTIAL_PARAMS = frozenset(
    {"token", "access_token", "id_token", "refresh_token", "api_key", "apikey", "api-key", "key", "auth",
     "authorization", "bearer", "client_secret", "password", "secret"}
)  # fmt: skip
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_AUTHORITY = re.compile(rf"(?P<host>\[[0-9a-f:.]+\]|{_LABEL}(?:\.{_LABEL})*)(?::(?P<port>[0-9]{{1,5}}|\*))?")
_ORIGIN = re.compile(r"(?P<scheme>https?)://(?P<authority>[^/?#]*)")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


@dataclass(frozen=True)
class Authority:
    """A parsed `host[:port]`; `port` is None when absent and "*" in an allow-list pattern."""

    host: str
    port: int | str | None

    def allows(self, other: Authority) -> bool:
        """True when this pattern admits `other` (`:*` admits any port, or none)."""
        return self.host == other.host and (self.port == "*" or self.port == other.port)


def parse_authority(value: str, *, pattern: bool = False) -> Authority | None:
    """Strictly parse a Host value (RFC 9110 uri-host [":" port]); None for anything else."""
    match = _AUTHORITY.fullmatch(value.lower())
    if match is None:
        return None
    host, port = match["host"], match["port"]
    if host.startswith("[") and not _is_ipv6(host[1:-1]):
        return None
    if port == "*":
        return Authority(host, "*") if pattern else None
    if port is not None and not 1 <= int(port) <= 65535:
        return None
    return Authority(host, int(port) if port is not None else None)


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def parse_origin(value: str, *, pattern: bool = False) -> tuple[str, Authority] | None:
    """Strictly parse an Origin (`scheme://host[:port]`, no path, userinfo or `null`)."""
    match = _ORIGIN.fullmatch(value.strip().lower())
    authority = parse_authority(match["authority"], pattern=pattern) if match else None
    return (match["scheme"], authority) if match and authority else None


def _patterns(values: Iterable[str]) -> list[Authority]:
    parsed = [parse_authority(v, pattern=True) for v in values]
    return [p for p in parsed if p is not None]


def header_values(scope: Scope, name: bytes) -> list[str]:
    """Every value of one header, in order (ASGI header names are lower-case)."""
    return [v.decode("latin-1") for k, v in scope["headers"] if k == name]


async def send_error(send: Send, status: int, message: str, *, headers: Iterable[tuple[str, str]] = ()) -> None:
    """A JSON-RPC-shaped error body (id null) with `status`; the connection closes after it."""
    body = json.dumps(jsonrpc_error(message)).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class QueryCredentialGuard:
    """400 for credentials in the query string; the query is blanked first so no access log keeps it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("query_string"):
            names = {k.lower() for k, _ in parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)}
            if names & CREDENTIAL_PARAMS:
                scope["query_string"] = b"redacted"  # same dict uvicorn's access log reads
                log.warning("query_credential_refused", path=scope.get("path"))
                await send_error(send, 400, "Credentials are accepted only in the Authorization header")
                return
        await self.app(scope, receive, send)


class HostGuard:
    """421 unless the request has exactly one strictly valid, allowed Host header."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: Iterable[str]) -> None:
        self.app = app
        self.allowed = _patterns(allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in {"http", "websocket"} and not self._allowed(header_values(scope, b"host")):
            await send_error(send, 421, "Invalid Host header")
            return
        await self.app(scope, receive, send)

    def _allowed(self, values: list[str]) -> bool:
        authority = parse_authority(values[0]) if len(values) == 1 else None
        if authority is None or not any(p.allows(authority) for p in self.allowed):
            log.warning("host_refused", count=len(values), host=quote(values[0]) if values else None)
            return False
        return True


class OriginGuard:
    """403 for a request whose Origin is present but not allowed; absent Origin (non-browser) passes."""

    def __init__(self, app: ASGIApp, *, allowed_origins: Iterable[str]) -> None:
        self.app = app
        parsed = [parse_origin(v, pattern=True) for v in allowed_origins]
        self.allowed = [p for p in parsed if p is not None]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in {"http", "websocket"} and not self._allowed(header_values(scope, b"origin")):
            await send_error(send, 403, "Invalid Origin header")
            return
        await self.app(scope, receive, send)

    def _allowed(self, values: list[str]) -> bool:
        if not values:
            return True
        origin = parse_origin(values[0]) if len(values) == 1 else None
        if origin is None or not any(s == origin[0] and a.allows(origin[1]) for s, a in self.allowed):
            log.warning("origin_refused", origin=quote(values[0]))
            return False
        return True


class ConcurrencyLimit:
    """503 with Retry-After beyond `limit` requests in flight; GET streams are bounded by sessions instead."""

    def __init__(self, app: ASGIApp, *, limit: int, retry_after_seconds: int = 1) -> None:
        self.app = app
        self.limit = limit
        self.retry_after = str(retry_after_seconds)
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "GET":
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            log.warning("concurrency_limit_reached", limit=self.limit)
            await send_error(send, 503, "Server busy, retry later", headers=[("Retry-After", self.retry_after)])
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


class BodyGuard:
    """Reads the whole body before the app runs: 413 over `max_bytes` (chunked too), 408 past the deadline."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, timeout_seconds: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        declared = header_values(scope, b"content-length")
        if declared and (not declared[0].isdigit() or int(declared[0]) > self.max_bytes):
            await self._refuse(send, 413)
            return
        body = await self._read(receive, send)
        if body is not None:
            await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive: Receive, send: Send) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        with anyio.move_on_after(self.timeout):
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return None  # the client went away; nothing to answer
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_bytes:
                    await self._refuse(send, 413)
                    return None
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
        await self._refuse(send, 408)
        return None

    async def _refuse(self, send: Send, status: int) -> None:
        log.warning("request_body_refused", status=status, max_bytes=self.max_bytes, timeout_seconds=self.timeout)
        if status == 413:
            # The connection stays open: uvicorn discards the rest of the body (the keep-alive timeout bounds
            # that), so the client reads the 413 instead of a reset from closing with unread data.
            await send_error(send, status, "Request body too large")
        else:
            await send_error(send, status, "Request body not received in time", headers=[("Connection", "close")])


class EnvelopeGuard:
    """400 with a JSON-RPC -32600 for a body that is JSON but not one well-formed request or notification.

    Unparseable bodies are left to the SDK (its parse error names only a position). Accepted: one object,
    `"jsonrpc": "2.0"`, a string `method`, params absent or an object, and an id (if present) that is a
    string or an integer. Responses posted by a client (`result`/`error`, no method) are left to the SDK.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        first = await receive()
        body = first.get("body", b"") if first["type"] == "http.request" else b""
        problem = None if first.get("more_body", False) else envelope_problem(body)
        if problem is not None:
            log.info("jsonrpc_envelope_refused", problem=problem)
            await send_error(send, 400, f"Invalid Request: {problem}")
            return
        await self.app(scope, _replay_message(first, receive), send)


def envelope_problem(body: bytes) -> str | None:
    """Why `body` is not one JSON-RPC 2.0 request or notification, or None (also for non-JSON)."""
    try:
        message = pydantic_core.from_json(body)
    except ValueError:
        return None
    if not isinstance(message, dict):
        return (
            "batches are not supported; send one JSON-RPC object per request"
            if isinstance(message, list)
            else ("the body must be a JSON-RPC object")
        )
    if "method" not in message:
        return None  # a posted response, or garbage: the SDK answers these without echoing input
    if message.get("jsonrpc") != "2.0" or not isinstance(message["method"], str):
        return 'expected "jsonrpc": "2.0" and a string "method"'
    if "params" in message and not isinstance(message["params"], dict):
        return '"params" must be an object'
    request_id = message.get("id", "")
    if "id" in message and (isinstance(request_id, bool) or not isinstance(request_id, str | int)):
        return '"id" must be a string or an integer'
    return None


def _replay_message(first: Message, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return first
        return await receive()

    return replay


def _replay(body: bytes, receive: Receive) -> Receive:
    return _replay_message({"type": "http.request", "body": body, "more_body": False}, receive)


def harden(app: ASGIApp, settings: Settings) -> ASGIApp:
    """Wrap `app` in every transport guard, in the order documented at the top of this module."""
    guarded: ASGIApp = BodyGuard(
        EnvelopeGuard(app),
        max_bytes=settings.max_request_body_bytes,
        timeout_seconds=settings.request_body_timeout_seconds,
    )
    guarded = ConcurrencyLimit(guarded, limit=settings.max_concurrent_requests)
    guarded = OriginGuard(guarded, allowed_origins=settings.allowed_origins)
    guarded = HostGuard(guarded, allowed_hosts=settings.allowed_hosts)
    return QueryCredentialGuard(guarded)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """uvicorn.Config keyword arguments that bound what a client can hold before the app sees a request."""
    return {
        "timeout_keep_alive": 5,  # idle keep-alive connections are closed after 5 s
        "h11_max_incomplete_event_size": 16 * 1024,  # request line + headers cap (h11 parser)
        "limit_concurrency": settings.max_concurrent_requests + settings.max_sessions + 16,  # connections+tasks
        "server_header": False,
        "proxy_headers": False,  # trust X-Forwarded-* only when the proxy is configured (see docs)
        "access_log": True,
    }
