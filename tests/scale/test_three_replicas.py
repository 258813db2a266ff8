"""Three real `mcp-desk http` replicas on the real PostgreSQL and Redis behind a real HAProxy, end to end.

The tests run in file order on one set of replicas; the last one SIGKILLs a replica under load, then
checks that no acknowledged write was lost and that every replica's audit chain verifies.
"""

from __future__ import annotations

import secrets
import signal
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import mcp_types as types
import pytest

from tests.conftest import error, ok
from tests.e2e.conftest import MCP_DESK, HttpServer, base_env, launch
from tests.e2e.support import connect, log_lines
from tests.redis_support import REDIS_URL, own_prefix
from tests.scale.haproxy_support import running_haproxy
from tests.scale.test_replicas import connect_with
from tests.storage.helpers import SERVER_URL, database_url

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

NAMES = ("replica-1", "replica-2", "replica-3")
EXPORT_LIMIT = 10  # export_ticket's rate_per_minute in the shipped policy
CLIENTS, CREATES_PER_CLIENT = 8, 12


@dataclass
class Cluster:
    """Three replicas sharing one PostgreSQL database, one Redis prefix and one audit folder, behind HAProxy."""

    replicas: dict[str, HttpServer]
    balancer: str
    audit: Path
    directory: Path

    def served(self) -> Counter[str]:
        """Tool calls finished per replica id, read from every replica's log."""
        lines = [line for server in self.replicas.values() for line in log_lines(server.log)]
        return Counter(line["replica"] for line in lines if line.get("event") == "tool_call_finished")


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new database `t_<random>` on the test server for this module, dropped afterwards."""
    name = f"t_{secrets.token_hex(6)}"

    async def admin(statement: str) -> None:
        connection = await asyncpg.connect(SERVER_URL)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    anyio.run(admin, f"CREATE DATABASE {name}")
    try:
        yield database_url(name)
    finally:
        anyio.run(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp("three")
    audit = directory / "audit"
    with fresh_database() as url, own_prefix() as prefix:
        replicas: dict[str, HttpServer] = {}
        try:
            for name in NAMES:
                replicas[name] = launch(
                    directory,
                    name,
                    MCP_DESK_DATABASE_URL=url,
                    MCP_DESK_REDIS_URL=REDIS_URL,
                    MCP_DESK_REDIS_KEY_PREFIX=prefix,
                    MCP_DESK_REPLICA_ID=name,
                    MCP_DESK_AUDIT_LOG_PATH=str(audit),
                    MCP_DESK_RATE_LIMIT_RPM="100000",  # the load below must not meet the global limit
                )
            with running_haproxy(list(replicas.items()), directory) as balancer:
                yield Cluster(replicas=replicas, balancer=balancer, audit=audit, directory=directory)
        finally:
            for server in replicas.values():
                server.kill()


async def test_writes_through_the_balancer_reach_every_replica_and_are_read_back_anywhere(cluster: Cluster) -> None:
    before = cluster.served()
    async with connect(cluster.balancer, mode="2026-07-28") as client:
        created = [ok(await client.call_tool("create_note", {"title": f"lb {n}", "body": "b"})) for n in range(9)]
    spread = cluster.served() - before
    assert set(spread) == set(NAMES)
    for name, server in cluster.replicas.items():
        async with connect(server.url, mode="2026-07-28") as direct:
            for note in created:
                read = ok(await direct.call_tool("get_note", {"note_id": note["id"]}))
                assert read["title"] == note["title"], name


@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")  # the handshake-era client API
async def test_a_handshake_session_sticks_to_one_replica(cluster: Cluster) -> None:
    before = cluster.served()
    async with connect(cluster.balancer, mode="legacy") as session:
        for n in range(6):
            ok(await session.call_tool("create_note", {"title": f"sticky {n}", "body": "b"}))
    assert sorted((cluster.served() - before).values()) == [6]


async def test_a_subscriber_on_one_replica_hears_a_change_made_through_another(cluster: Cluster) -> None:
    listener, writer = cluster.replicas["replica-1"], cluster.replicas["replica-3"]
    async with connect(writer.url, mode="2026-07-28") as write:
        ticket = ok(await write.call_tool("create_ticket", {"title": "fan-out", "description": "d"}))
        uri = f"ticket://{ticket['id']}"
        async with (
            connect(listener.url, mode="2026-07-28") as modern,
            modern.listen(resource_subscriptions=[uri]) as sub,
        ):
            ok(await write.call_tool("comment_ticket", {"ticket_id": ticket["id"], "body": "hi"}))
            with anyio.fail_after(15):
                event = await sub.__anext__()
    assert getattr(event, "uri", None) == uri


@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")  # the handshake-era client API
async def test_a_legacy_subscriber_hears_a_change_made_through_the_balancer(cluster: Cluster) -> None:
    received: list[str] = []
    got = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            received.append(str(message.params.uri))
            got.set()

    async with connect(cluster.balancer, mode="2026-07-28") as write:
        ticket = ok(await write.call_tool("create_ticket", {"title": "fan-out legacy", "description": "d"}))
        uri = f"ticket://{ticket['id']}"
        async with connect_with(cluster.replicas["replica-2"].url, mode="legacy", message_handler=on_message) as legacy:
            await legacy.subscribe_resource(uri)
            for _ in range(3):  # through the balancer: at least two of these land on other replicas
                ok(await write.call_tool("comment_ticket", {"ticket_id": ticket["id"], "body": "hi"}))
            with anyio.fail_after(15):
                await got.wait()
    assert set(received) == {uri}


async def test_a_rate_limit_holds_across_the_three_replicas(cluster: Cluster) -> None:
    async with connect(cluster.balancer, mode="2026-07-28") as client:
        ticket = ok(await client.call_tool("create_ticket", {"title": "limited", "description": "d"}))
    calls = EXPORT_LIMIT + 5
    window_before = int(time.time() // 60)
    results = []
    for n in range(calls):  # round robin over the replicas directly: each one sees a third of the calls
        server = cluster.replicas[NAMES[n % 3]]
        async with connect(server.url, mode="2026-07-28") as client:
            arguments = {"ticket_id": ticket["id"], "filename": f"limited-{n}.md"}
            results.append(await client.call_tool("export_ticket", arguments))
    windows = int(time.time() // 60) - window_before + 1  # a fixed minute window: a boundary allows one more
    admitted = [result for result in results if not result.is_error]
    refused = [error(result) for result in results if result.is_error]
    assert all(text.startswith("rate_limited:") for text in refused), refused
    assert len(admitted) <= EXPORT_LIMIT * windows
    if windows == 1:
        assert (len(admitted), len(refused)) == (EXPORT_LIMIT, calls - EXPORT_LIMIT)


async def test_a_replica_killed_under_load_loses_no_acknowledged_write_and_every_chain_verifies(
    cluster: Cluster,
) -> None:
    victim = cluster.replicas["replica-2"]
    acknowledged: dict[str, str] = {}
    failed = 0
    enough = anyio.Event()
    at_kill = 0

    async def writer(number: int) -> None:
        nonlocal failed
        done = 0
        while done < CREATES_PER_CLIENT:
            try:
                async with connect(cluster.balancer, mode="2026-07-28") as client:
                    while done < CREATES_PER_CLIENT:
                        title = f"load {number}.{done}"
                        done += 1
                        note = ok(await client.call_tool("create_note", {"title": title, "body": "b"}))
                        acknowledged[note["id"]] = title
                        if len(acknowledged) >= CLIENTS * 2:
                            enough.set()
            except Exception:  # a call cut off by the kill: not acknowledged, so not checked
                failed += 1

    async def killer() -> None:
        nonlocal at_kill
        await enough.wait()
        victim.process.send_signal(signal.SIGKILL)
        at_kill = len(acknowledged)

    with anyio.fail_after(90):
        async with anyio.create_task_group() as group:
            group.start_soon(killer)
            for number in range(CLIENTS):
                group.start_soon(writer, number)
    assert victim.process.wait(timeout=10) == -signal.SIGKILL
    assert enough.is_set()  # the kill came after writes had been acknowledged through every replica
    assert len(acknowledged) > at_kill, f"{failed} calls failed"  # and the two others took the load on

    survivor = cluster.replicas["replica-1"]
    async with connect(survivor.url, mode="2026-07-28") as client:
        for note_id, title in acknowledged.items():
            assert ok(await client.call_tool("get_note", {"note_id": note_id}))["title"] == title

    with anyio.fail_after(60):
        verified = await anyio.run_process(
            [MCP_DESK, "audit", "verify", str(cluster.audit)], env=base_env(cluster.directory), check=False
        )
    report = verified.stdout.decode()
    assert verified.returncode == 0, report + verified.stderr.decode()
    for name in NAMES:
        assert f"records verified in {cluster.audit / (name + '.jsonl')}" in report
    assert sorted(path.name for path in cluster.audit.iterdir()) == [f"{name}.jsonl" for name in NAMES]
