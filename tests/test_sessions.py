"""Session ownership, per-principal caps, idle expiry and session-id hygiene through a real uvicorn."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest

from mcp_desk.auth import http_auth
from mcp_desk.config import Settings
from mcp_desk.logging import install_session_id_filter
from mcp_desk.sessions import OwnedSessionManager
from tests.httpsec_support import (
    Key,
    MemoryKeyStore,
    build_app,
    call_tool,
    eventually,
    headers,
    initialize_body,
    messages,
    open_session,
    serving,
)

pytestmark = pytest.mark.anyio

KEYS = {"key-alice-0123456789": Key("alice", "agent", "k1"), "key-bob-0123456789": Key("bob", "agent", "k2")}
ALICE, BOB = "key-alice-0123456789", "key-bob-0123456789"


MakeBase = Callable[..., AbstractAsyncContextManager[tuple[httpx.AsyncClient, OwnedSessionManager]]]


@pytest.fixture
def make_base() -> MakeBase:
    """A running API-key server (alice, bob) and a client for it."""

    @asynccontextmanager
    async def make(**overrides: Any) -> AsyncIterator[tuple[httpx.AsyncClient, OwnedSessionManager]]:
        settings = Settings(**overrides)
        app, manager = build_app(settings, auth=http_auth(settings, key_store=MemoryKeyStore(KEYS)))
        async with serving(app, settings) as url, httpx.AsyncClient(base_url=url) as client:
            yield client, manager

    return make


async def test_another_principals_session_id_gets_404(make_base: MakeBase) -> None:
    async with make_base() as (client, _):
        session = await open_session(client, token=ALICE)
        stolen = await call_tool(client, "whoami", {}, session=session, token=BOB)
        own = await call_tool(client, "whoami", {}, session=session, token=ALICE)
    assert stolen.status_code == 404
    assert "alice" not in stolen.text
    assert own.status_code == 200
    assert messages(own)[-1]["result"]["structuredContent"] == {"caller": "alice"}


async def test_a_session_cannot_be_used_or_deleted_without_credentials(make_base: MakeBase) -> None:
    async with make_base() as (client, _):
        session = await open_session(client, token=ALICE)
        anonymous = await call_tool(client, "whoami", {}, session=session)
        deleted = await client.delete("/mcp", headers=headers(session=session, token=BOB))
        still = await call_tool(client, "whoami", {}, session=session, token=ALICE)
    assert (anonymous.status_code, deleted.status_code, still.status_code) == (401, 404, 200)


async def test_a_principal_may_hold_only_its_share_of_sessions(make_base: MakeBase) -> None:
    async with make_base(max_sessions_per_principal=2) as (client, manager):
        first = await open_session(client, token=ALICE)
        await open_session(client, token=ALICE)
        refused = await client.post("/mcp", json=initialize_body(), headers=headers(token=ALICE))
        others = await open_session(client, token=BOB)
        closed = await client.delete("/mcp", headers=headers(session=first, token=ALICE))
        again = await open_session(client, token=ALICE)
        assert manager.open_sessions == 3
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "60"
    assert others
    assert again
    assert closed.status_code == 200


async def test_the_global_session_cap_still_applies(make_base: MakeBase) -> None:
    async with make_base(max_sessions=1) as (client, _):
        await open_session(client, token=ALICE)
        refused = await client.post("/mcp", json=initialize_body(), headers=headers(token=BOB))
    assert refused.status_code == 503


async def test_idle_sessions_expire_and_then_answer_404(make_base: MakeBase) -> None:
    async with make_base(session_idle_seconds=0.2) as (client, manager):
        session = await open_session(client, token=ALICE)
        await eventually(lambda: manager.open_sessions == 0)
        expired = await call_tool(client, "whoami", {}, session=session, token=ALICE)
    assert expired.status_code == 404


async def test_session_ids_are_long_random_hex_and_never_repeat(make_base: MakeBase) -> None:
    async with make_base(max_sessions_per_principal=20) as (client, _):
        ids = [await open_session(client, token=ALICE) for _ in range(20)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)


async def test_sdk_logs_never_carry_a_whole_session_id(make_base: MakeBase, caplog: pytest.LogCaptureFixture) -> None:
    install_session_id_filter()
    caplog.set_level(logging.DEBUG, logger="mcp")
    async with make_base() as (client, _):
        session = await open_session(client, token=ALICE)
        await call_tool(client, "whoami", {}, session=session, token=BOB)
        await client.post("/mcp", json=initialize_body(2), headers=headers(session="f" * 32, token=ALICE))
    rendered = [r.getMessage() for r in caplog.records]
    assert any(session[:8] in line for line in rendered)
    assert not any(session in line or "f" * 32 in line for line in rendered)


async def test_without_authentication_sessions_are_not_capped_per_principal() -> None:
    settings = Settings(max_sessions_per_principal=1)
    app, _ = build_app(settings)
    async with serving(app, settings) as url, httpx.AsyncClient(base_url=url) as client:
        ids = [await open_session(client) for _ in range(3)]
    assert len(set(ids)) == 3
