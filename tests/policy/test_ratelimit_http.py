"""HTTP pre-check: 429 + Retry-After before the body, only for stateless tools/call requests."""

from __future__ import annotations

import httpx
import pytest

from server.errors import RateLimited
from server.policy.ratelimit import RateLimit, WindowStore
from server.policy.ratelimit_http import RateLimitPrecheck, Receive, Scope, Send
from tests.clock import ManualClock

pytestmark = pytest.mark.anyio

MINUTE_START = 1_750_000_020.0
STATELESS = {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "get_note"}


async def _inner(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"reached"})


async def _spent_limiter(clock: ManualClock) -> RateLimit:
    store = WindowStore(clock)
    limiter = RateLimit(storage=store, requests_per_minute=1, tokens_per_minute=100, clock=clock)
    await store.incr(f"mcp-desk/rl/requests/{int(clock() // 60)}/alice", 60)
    return limiter


def _client(limiter: RateLimit, refused: list[tuple[str, RateLimited]]) -> httpx.AsyncClient:
    app = RateLimitPrecheck(
        _inner,
        limiter=limiter,
        principal_of=lambda scope: dict(scope["headers"]).get(b"x-test-principal", b"").decode() or None,
        on_refused=lambda who, exc: refused.append((who, exc)),
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")


async def test_a_stateless_tool_call_over_the_minute_gets_429_with_retry_after() -> None:
    refused: list[tuple[str, RateLimited]] = []
    async with _client(await _spent_limiter(ManualClock(MINUTE_START + 20)), refused) as client:
        response = await client.post("/mcp", headers={**STATELESS, "x-test-principal": "alice"}, content=b"{}")

    assert response.status_code == 429
    assert response.headers["retry-after"] == "40"
    assert response.json()["retry_after_seconds"] == 40
    assert [(who, exc.context["scope"]) for who, exc in refused] == [("alice", "requests")]


async def test_other_principals_sessions_and_methods_pass_through() -> None:
    refused: list[tuple[str, RateLimited]] = []
    async with _client(await _spent_limiter(ManualClock(MINUTE_START + 20)), refused) as client:
        bob = await client.post("/mcp", headers={**STATELESS, "x-test-principal": "bob"}, content=b"{}")
        anonymous = await client.post("/mcp", headers=STATELESS, content=b"{}")
        sessionful = await client.post("/mcp", headers={"x-test-principal": "alice"}, content=b"{}")
        listing = await client.post(
            "/mcp", headers={**STATELESS, "Mcp-Method": "tools/list", "x-test-principal": "alice"}, content=b"{}"
        )
        fetch = await client.get("/mcp", headers={**STATELESS, "x-test-principal": "alice"})

    assert [r.status_code for r in (bob, anonymous, sessionful, listing, fetch)] == [200] * 5
    assert refused == []


async def test_a_spent_token_minute_is_refused_early_except_for_get_usage() -> None:
    clock = ManualClock(MINUTE_START + 20)
    store = WindowStore(clock)
    limiter = RateLimit(storage=store, requests_per_minute=10, tokens_per_minute=100, clock=clock)
    await store.incr(f"mcp-desk/rl/tokens/{int(clock() // 60)}/alice", 60, 150)
    async with _client(limiter, []) as client:
        search = await client.post("/mcp", headers={**STATELESS, "x-test-principal": "alice"}, content=b"{}")
        usage = await client.post(
            "/mcp", headers={**STATELESS, "Mcp-Name": "get_usage", "x-test-principal": "alice"}, content=b"{}"
        )

    assert (search.status_code, usage.status_code) == (429, 200)
