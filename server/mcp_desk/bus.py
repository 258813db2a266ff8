"""Resource-update fan-out across replicas: the SDK's `SubscriptionBus` over Redis pub/sub.

A change made through one replica must reach clients subscribed through another, in both protocol
eras. `publish` hands the event to this replica's listeners at once (so Redis being down never costs
a local subscriber its notification) and PUBLISHes it on one channel; every replica's reader task
receives it, skips its own (each bus instance has a random origin id, since two replicas may share
a host name), and hands it to its listen streams (2026-07-28 era) and to `on_remote` handlers (the
handshake era's `resources/subscribe` sessions). Delivery is fire-and-forget with no replay, as the
SDK's own bus: events published while a replica is cut off from Redis are not delivered to it, and
clients refetch when they reconnect. Redis failures are logged and counted, never raised to the
writer whose change triggered the event.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.lowlevel
import orjson
import structlog
from anyio.abc import TaskStatus
from mcp.server.subscriptions import (
    PromptsListChanged,
    ResourcesListChanged,
    ResourceUpdated,
    ServerEvent,
    ToolsListChanged,
)
from redis.asyncio import ConnectionPool, Redis
from redis.exceptions import RedisError

__all__ = ["RedisSubscriptionBus", "connect_redis", "redis_ping"]

log = structlog.get_logger()

CHANNEL_SUFFIX = "events"
POLL_SECONDS = 5.0
RECONNECT_SECONDS = (0.1, 0.5, 1.0, 2.0, 5.0)

Listener = Callable[[ServerEvent], None]
RemoteHandler = Callable[[ServerEvent], Awaitable[None]]
ErrorHook = Callable[[str], None]
"""`on_error(operation)`: a Redis operation failed; operation is `publish` or `subscribe`."""


def _ignore(*_: object) -> None:
    """Default hook: do nothing."""


def connect_redis(url: str, *, timeout_seconds: float) -> Redis:
    """A client on its own pool with bounded connect/read timeouts; close it with `aclose()`."""
    pool = ConnectionPool.from_url(
        url,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        health_check_interval=30,
    )
    return Redis.from_pool(pool)


async def redis_ping(client: Redis) -> bool:
    """True when Redis answers PING; a refused or timed-out connection is False, never an exception."""
    try:
        return bool(await client.ping())
    except (RedisError, OSError):
        return False


class RedisSubscriptionBus:
    """`SubscriptionBus` shared by every replica through one Redis channel under `key_prefix`."""

    def __init__(
        self, client: Redis, *, key_prefix: str, on_error: ErrorHook = _ignore, startup_wait_seconds: float = 5.0
    ) -> None:
        self._client = client
        self._startup_wait = startup_wait_seconds
        self.channel = f"{key_prefix}:{CHANNEL_SUFFIX}"
        self._origin = uuid.uuid4().hex
        self._on_error = on_error
        self._listeners: dict[object, Listener] = {}
        self._remote: list[RemoteHandler] = []
        self.connected = anyio.Event()

    @property
    def pool(self) -> ConnectionPool:
        """The connection pool, for other users of the same Redis (the limits storage)."""
        pool: ConnectionPool = self._client.connection_pool
        return pool

    async def publish(self, event: ServerEvent) -> None:
        """Deliver `event` here at once, then to every other replica through Redis (best effort)."""
        self._deliver(event)
        try:
            await self._client.publish(self.channel, _encode(event, self._origin))
        except (RedisError, OSError) as exc:
            self._on_error("publish")
            log.warning("bus_publish_failed", error=type(exc).__name__)
        await anyio.lowlevel.checkpoint()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Register a local listener (a listen stream); returns an idempotent unsubscribe."""
        token = object()
        self._listeners[token] = listener

        def unsubscribe() -> None:
            self._listeners.pop(token, None)

        return unsubscribe

    def on_remote(self, handler: RemoteHandler) -> None:
        """Also hand events published by other replicas to `handler` (awaited in the reader task)."""
        self._remote.append(handler)

    async def ping(self) -> bool:
        """True when Redis answers."""
        return await redis_ping(self._client)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Read the channel in the background while the block runs; close the client on the way out.

        Waits (a bounded time) for the first subscription, so a replica that reports ready already hears
        the others; without Redis it starts anyway, unhealthy, and subscribes once Redis answers.
        """
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._read_forever)
                with anyio.move_on_after(self._startup_wait):
                    await self.connected.wait()
                yield
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self._client.aclose()

    async def _read_forever(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        failures = 0
        while True:
            try:
                await self._read()
            except (RedisError, OSError) as exc:
                self.connected = anyio.Event()
                self._on_error("subscribe")
                log.warning("bus_subscription_lost", error=type(exc).__name__)
                await anyio.sleep(RECONNECT_SECONDS[min(failures, len(RECONNECT_SECONDS) - 1)])
                failures += 1
            else:  # pragma: no cover - _read only returns by raising
                failures = 0

    async def _read(self) -> None:
        async with self._client.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(self.channel)
            self.connected.set()
            log.info("bus_subscribed")
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=POLL_SECONDS)
                if message is not None and message.get("type") == "message":
                    await self._receive(message["data"])

    async def _receive(self, data: bytes) -> None:
        decoded = _decode(data)
        if decoded is None:
            log.warning("bus_message_ignored")
            return
        origin, event = decoded
        if origin == self._origin:
            return
        self._deliver(event)
        for handler in list(self._remote):
            await handler(event)

    def _deliver(self, event: ServerEvent) -> None:
        for listener in list(self._listeners.values()):
            try:
                listener(event)
            except Exception:  # fan-out boundary: one bad listener must not starve the others
                log.exception("subscription_listener_failed")


def _encode(event: ServerEvent, origin: str) -> bytes:
    body: dict[str, Any] = {"origin": origin, "kind": type(event).__name__}
    if isinstance(event, ResourceUpdated):
        body["uri"] = event.uri
    return orjson.dumps(body)


_KINDS: dict[str, Callable[[dict[str, Any]], ServerEvent]] = {
    "ResourceUpdated": lambda body: ResourceUpdated(uri=str(body["uri"])),
    "ResourcesListChanged": lambda _: ResourcesListChanged(),
    "ToolsListChanged": lambda _: ToolsListChanged(),
    "PromptsListChanged": lambda _: PromptsListChanged(),
}


def _decode(data: bytes) -> tuple[str, ServerEvent] | None:
    """(origin, event) of a message, or None for anything malformed or of a kind we do not carry."""
    try:
        body = orjson.loads(data)
        return str(body["origin"]), _KINDS[body["kind"]](body)
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
