"""The machine's real Redis (127.0.0.1:6379) for tests: one key prefix per test, cleaned up, and restarts."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import pytest
import redis
from redis.asyncio import ConnectionPool

from mcp_desk.policy.ratelimit import CounterStore, open_storage

REDIS_URL = "redis://127.0.0.1:6379/0"
START_COMMAND = [
    "redis-server",
    "--daemonize",
    "yes",
    "--bind",
    "127.0.0.1",
    "-::1",
    "--port",
    "6379",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    "/var/lib/redis",
    "--logfile",
    "/var/log/redis/ci.log",
]


def redis_up() -> bool:
    """True when the machine's Redis answers PING."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def wait_for_redis(*, up: bool, timeout: float = 20) -> None:
    """Wait until Redis answers (or stops answering); fail the test past `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if redis_up() is up:
            return
        time.sleep(0.05)
    pytest.fail(f"redis did not {'start' if up else 'stop'} within {timeout} s")


def stop_redis() -> None:
    """`redis-cli shutdown nosave`: Redis goes away as in a crash of its host (it keeps nothing on disk)."""
    subprocess.run(["redis-cli", "-p", "6379", "shutdown", "nosave"], capture_output=True, timeout=30, check=False)
    wait_for_redis(up=False)


def start_redis() -> None:
    """Start the machine's Redis with its usual command if it is not running, and wait until it answers."""
    if not redis_up():
        subprocess.run(START_COMMAND, capture_output=True, timeout=30, check=True)
    wait_for_redis(up=True)


def require_redis() -> None:
    """Start Redis if needed (as `.ci/run` does); fail with a clear message where it cannot run."""
    if not redis_up() and shutil.which("redis-server") is None:
        pytest.fail("these tests need Redis on 127.0.0.1:6379 (Debian package redis-server)")
    start_redis()


@contextmanager
def own_prefix() -> Iterator[str]:
    """A key prefix (and pub/sub channel prefix) nobody else uses; its keys are deleted afterwards."""
    require_redis()
    prefix = f"t-{uuid.uuid4().hex[:12]}"
    yield prefix
    start_redis()  # a test that stopped Redis leaves it running
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """This test's own Redis key prefix."""
    with own_prefix() as prefix:
        yield prefix


@asynccontextmanager
async def redis_storage(prefix: str, *, url: str = REDIS_URL) -> AsyncIterator[CounterStore]:
    """A `limits` counter store on Redis under `prefix`, on a pool of its own that is closed afterwards."""
    pool = ConnectionPool.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    try:
        yield open_storage(url, key_prefix=prefix, connection_pool=pool)
    finally:
        await pool.aclose()


def closed_port() -> int:
    """A loopback port with nothing listening (bound, then released): a Redis that is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
