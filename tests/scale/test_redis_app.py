"""Whole apps on the machine's Redis: shared limits that fail closed and recover, fan-out, replica identity."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import mcp_types as types
import pytest
from mcp.server.subscriptions import ResourceUpdated, ToolsListChanged

from mcp_desk.app import App
from mcp_desk.bus import RedisSubscriptionBus, connect_redis
from mcp_desk.config import load_settings
from mcp_desk.errors import ConfigError
from mcp_desk.http import sidecar_app
from tests.conftest import MakeApp, MakeSettings, connected, error, ok
from tests.redis_support import REDIS_URL, closed_port, redis_prefix, start_redis, stop_redis

__all__ = ["redis_prefix"]  # a fixture, imported for the tests below

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def sidecar(app: App) -> AsyncIterator[httpx.AsyncClient]:
    """The app's /health, /health/ready and /metrics, in process."""
    asgi = sidecar_app(
        metrics=app.metrics, lifecycle=app.lifecycle, checks=app.checks, version="t", replica=app.settings.replica_id
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://sidecar") as client:
        yield client


def note(n: int) -> dict[str, Any]:
    return {"title": f"note {n}", "body": "b"}


async def test_redis_down_refuses_limited_calls_marks_the_replica_unready_and_service_resumes_by_itself(
    make_app: MakeApp, redis_prefix: str
) -> None:
    app = make_app(redis_url=REDIS_URL, redis_key_prefix=redis_prefix, replica_id="replica-a")
    async with connected(app) as client, sidecar(app) as health:
        ok(await client.call_tool("create_note", note(1)))
        assert (await health.get("/health/ready")).status_code == 200
        stop_redis()
        try:
            refused = await client.call_tool("create_note", note(2))
            down = await health.get("/health")
            unready = await health.get("/health/ready")
            metrics = (await health.get("/metrics")).text
        finally:
            start_redis()
        resumed = await client.call_tool("create_note", note(3))
        ready_again = await health.get("/health/ready")
        listed = ok(await client.call_tool("list_notes", {}))

    assert error(refused).startswith("limits_unavailable: limits are unavailable: the shared rate-limit store (Redis)")
    assert refused.meta is not None
    assert refused.meta["mcp-desk/error"] == {"code": "limits_unavailable", "retry_after_seconds": 5}
    assert down.status_code == 503
    assert down.json()["status"] == "unhealthy"
    assert down.json()["replica"] == "replica-a"
    assert down.json()["checks"]["redis"]["status"] == "fail"
    assert "6379" not in down.text + unready.text + metrics  # the URL is never shown
    assert unready.status_code == 503
    assert unready.json() == {"status": "unavailable", "failed": ["redis"]}
    assert 'mcp_desk_redis_errors_total{operation="rate_limit"} 1.0' in metrics
    assert 'mcp_desk_rate_limited_total{scope="unavailable"} 1.0' in metrics
    ok(resumed)
    assert ready_again.status_code == 200
    assert [item["title"] for item in listed["items"]] == ["note 3", "note 1"]  # nothing ran while refused


async def test_a_rate_limit_holds_across_two_replicas(make_app: MakeApp, redis_prefix: str, tmp_path: Path) -> None:
    shared = {"redis_url": REDIS_URL, "redis_key_prefix": redis_prefix, "rate_limit_rpm": 4}
    a = make_app(**shared, replica_id="a")
    b = make_app(**shared, replica_id="b", audit_log_path=tmp_path / "audit-b.jsonl")
    async with connected(a) as client_a, connected(b) as client_b:
        results = [await (client_a, client_b)[n % 2].call_tool("create_note", note(n)) for n in range(7)]

    assert [r.is_error for r in results] == [False] * 4 + [True] * 3
    assert all(error(r).startswith("rate_limited: rate limit of 4 tool calls per minute") for r in results[4:])


@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")  # the handshake-era client API
async def test_a_legacy_subscriber_on_one_replica_hears_a_change_made_through_another(
    make_app: MakeApp, redis_prefix: str, tmp_path: Path
) -> None:
    received: list[str] = []
    got = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            received.append(str(message.params.uri))
            got.set()

    a = make_app(redis_url=REDIS_URL, redis_key_prefix=redis_prefix)
    b = make_app(redis_url=REDIS_URL, redis_key_prefix=redis_prefix, audit_log_path=tmp_path / "audit-b.jsonl")
    async with (
        connected(a, mode="legacy", message_handler=on_message) as subscriber,
        connected(b, mode="legacy") as writer,
    ):
        ticket = ok(await writer.call_tool("create_ticket", {"title": "x", "description": "d"}))
        await subscriber.subscribe_resource(f"ticket://{ticket['id']}")
        assert a.redis_bus is not None
        with anyio.fail_after(5):
            await a.redis_bus.connected.wait()
        ok(await writer.call_tool("comment_ticket", {"ticket_id": ticket["id"], "body": "hi"}))
        with anyio.fail_after(5):
            await got.wait()

    assert received == [f"ticket://{ticket['id']}"]


async def test_a_modern_listener_on_one_replica_hears_a_change_made_through_another(
    make_app: MakeApp, redis_prefix: str, tmp_path: Path
) -> None:
    a = make_app(redis_url=REDIS_URL, redis_key_prefix=redis_prefix)
    b = make_app(redis_url=REDIS_URL, redis_key_prefix=redis_prefix, audit_log_path=tmp_path / "audit-b.jsonl")
    async with connected(a, mode="2026-07-28") as listener, connected(b, mode="2026-07-28") as writer:
        ticket = ok(await writer.call_tool("create_ticket", {"title": "x", "description": "d"}))
        uri = f"ticket://{ticket['id']}"
        assert a.redis_bus is not None
        with anyio.fail_after(5):
            await a.redis_bus.connected.wait()
        async with listener.listen(resource_subscriptions=[uri]) as subscription:
            ok(await writer.call_tool("transition_ticket", {"ticket_id": ticket["id"], "status": "waiting"}))
            with anyio.fail_after(5):
                event = await subscription.__anext__()

    assert getattr(event, "uri", None) == uri


async def test_each_audit_record_names_its_replica(make_settings: MakeSettings, make_app: MakeApp) -> None:
    app = make_app(replica_id="replica-7")
    async with connected(app) as client:
        ok(await client.call_tool("create_note", note(1)))
    records = [json.loads(line) for line in app.settings.resolved_audit_log_path.read_text().splitlines()]

    assert records
    assert {record["replica"] for record in records} == {"replica-7"}


def test_the_replica_id_defaults_to_the_host_name(make_settings: MakeSettings) -> None:
    assert make_settings().replica_id == socket.gethostname()


async def test_a_bus_cut_off_from_redis_still_delivers_here_and_counts_the_error(redis_prefix: str) -> None:
    errors: list[str] = []
    heard: list[object] = []
    bus = RedisSubscriptionBus(
        connect_redis(f"redis://127.0.0.1:{closed_port()}/0", timeout_seconds=1),
        key_prefix=redis_prefix,
        on_error=errors.append,
        startup_wait_seconds=0,
    )

    def broken(event: object) -> None:
        raise RuntimeError("a listener that fails")

    async with bus.running():
        bus.subscribe(broken)  # first: it must not keep the next listener from hearing
        unsubscribe = bus.subscribe(heard.append)
        await bus.publish(ResourceUpdated(uri="ticket://t1"))
        await bus.publish(ToolsListChanged())
        unsubscribe()
        unsubscribe()
        await bus.publish(ResourceUpdated(uri="ticket://t2"))
        assert not await bus.ping()

    assert heard == [ResourceUpdated(uri="ticket://t1"), ToolsListChanged()]
    assert errors.count("publish") == 3


async def test_a_bus_skips_its_own_echo_and_malformed_messages(redis_prefix: str) -> None:
    heard_a: list[object] = []
    heard_b: list[object] = []
    remote_b: list[object] = []
    got = anyio.Event()

    async def on_remote(event: object) -> None:
        remote_b.append(event)
        got.set()

    a = RedisSubscriptionBus(connect_redis(REDIS_URL, timeout_seconds=1), key_prefix=redis_prefix)
    b = RedisSubscriptionBus(connect_redis(REDIS_URL, timeout_seconds=1), key_prefix=redis_prefix)
    b.on_remote(on_remote)
    async with a.running(), b.running():
        a.subscribe(heard_a.append)
        b.subscribe(heard_b.append)
        with anyio.fail_after(5):
            await a.connected.wait()
            await b.connected.wait()
        raw = connect_redis(REDIS_URL, timeout_seconds=1)
        try:
            await raw.publish(a.channel, b"not json")
            await raw.publish(a.channel, b'{"origin": "x", "kind": "Unknown"}')
        finally:
            await raw.aclose()
        await a.publish(ResourceUpdated(uri="ticket://t1"))
        with anyio.fail_after(5):
            await got.wait()

    assert heard_a == [ResourceUpdated(uri="ticket://t1")]  # once: its own echo from Redis is skipped
    assert heard_b == [ResourceUpdated(uri="ticket://t1")]
    assert remote_b == [ResourceUpdated(uri="ticket://t1")]


async def test_the_in_memory_client_keeps_working_without_redis(make_app: MakeApp) -> None:
    app = make_app()
    assert app.redis_bus is None
    assert "redis" not in [check.name for check in app.checks]
    async with connected(app) as client:
        ok(await client.call_tool("create_note", note(1)))


def test_a_redis_url_that_is_not_redis_is_refused_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_DESK_REDIS_URL", "http://user:hunter2@example.com")
    with pytest.raises(ConfigError) as refused:
        load_settings(env_file=None)
    assert str(refused.value) == "MCP_DESK_REDIS_URL: must be a redis:// or rediss:// URL"
