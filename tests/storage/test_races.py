"""Races two replicas run into, on every backend: two handles on the same data, calls released together."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import anyio
import pytest

from mcp_desk.errors import Conflict
from mcp_desk.storage.base import NewComment, Storage, TicketChanges
from tests.storage.conftest import MakeStore
from tests.storage.helpers import ADMIN, ALICE, note, ticket

pytestmark = pytest.mark.anyio
RACERS = 8


async def race(calls: list[Callable[[], Awaitable[Any]]]) -> list[Any]:
    """Run every call at once; each one's result or the exception it raised."""
    outcomes: list[Any] = [None] * len(calls)
    start = anyio.Event()

    async def run(i: int) -> None:
        await start.wait()
        try:
            outcomes[i] = await calls[i]()
        except Exception as exc:
            outcomes[i] = exc

    async with anyio.create_task_group() as tg:
        for i in range(len(calls)):
            tg.start_soon(run, i)
        start.set()
    return outcomes


async def replicas(make_store: MakeStore) -> tuple[Storage, Storage]:
    first = await make_store()
    return first, await make_store(same_as=first)


async def test_an_idempotency_key_reused_concurrently_through_two_replicas_creates_one_note(
    make_store: MakeStore,
) -> None:
    a, b = await replicas(make_store)
    created = await race([partial(note, (a, b)[i % 2], key="same-key") for i in range(RACERS)])
    assert not [c for c in created if isinstance(c, BaseException)]
    assert len({c.id for c in created}) == 1
    assert len((await a.list_notes(ADMIN, tag=None, cursor=None, limit=50)).items) == 1


async def test_an_idempotency_key_reused_concurrently_creates_one_ticket(make_store: MakeStore) -> None:
    a, b = await replicas(make_store)
    created = await race([partial(ticket, (a, b)[i % 2], key="same-key") for i in range(RACERS)])
    assert not [c for c in created if isinstance(c, BaseException)]
    assert len({c.id for c in created}) == 1
    assert await b.ticket_counts() == {"open": 1}


async def test_two_replicas_racing_on_one_expected_version_leave_one_winner_and_conflicts(
    make_store: MakeStore,
) -> None:
    a, b = await replicas(make_store)
    created = await note(a)

    def update(store: Storage, i: int) -> Callable[[], Awaitable[Any]]:
        return lambda: store.update_note(
            created.id, ALICE, title=f"writer {i}", body=None, tags=None, expected_version=1
        )

    outcomes = await race([update((a, b)[i % 2], i) for i in range(RACERS)])
    winners = [o for o in outcomes if not isinstance(o, BaseException)]
    losers = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(o, Conflict) and "not 1" in o.public for o in losers)
    stored = await b.get_note(created.id, ALICE)
    assert (stored.version, stored.title) == (2, winners[0].title)


async def test_racing_ticket_updates_on_one_version_leave_one_winner_and_one_comment(make_store: MakeStore) -> None:
    a, b = await replicas(make_store)
    created = await ticket(a)

    def update(store: Storage, i: int) -> Callable[[], Awaitable[Any]]:
        return lambda: store.update_ticket(
            created.id,
            TicketChanges(status="in_progress"),
            actor="a",
            expected_version=1,
            comment=NewComment(author="a", body=f"c{i}"),
        )

    outcomes = await race([update((a, b)[i % 2], i) for i in range(RACERS)])
    assert len([o for o in outcomes if not isinstance(o, BaseException)]) == 1
    assert all(isinstance(o, Conflict) for o in outcomes if isinstance(o, BaseException))
    stored = await b.get_ticket(created.id)
    assert (stored.version, stored.status, stored.comment_count) == (2, "in_progress", 1)
