"""The storage contract runs on every backend: a fresh SQLite file or a fresh PostgreSQL database per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from mcp_desk.storage.base import Storage
from mcp_desk.storage.postgres import PostgresStorage
from mcp_desk.storage.sqlite import SqliteStorage
from tests.storage.helpers import fresh_database

MakeStore = Callable[..., Awaitable[Storage]]


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_store(backend: str, tmp_path: Path) -> AsyncIterator[MakeStore]:
    """Open a store of the test's backend (`search_window=` passes through); all are closed at the end."""
    async with AsyncExitStack() as stack:
        opened = 0

        places: dict[int, Path | str] = {}

        async def make(*, same_as: Storage | None = None, **options: Any) -> Storage:
            """A new store, or (`same_as`) a second handle on another store's data, as a second replica has."""
            nonlocal opened
            opened += 1
            if same_as is not None:
                place = places[id(same_as)]
            elif backend == "sqlite":
                place = tmp_path / f"desk-{opened}.db"
            else:
                place = await stack.enter_async_context(fresh_database())
            store: Storage = (
                SqliteStorage(place, **options) if isinstance(place, Path) else PostgresStorage(place, **options)
            )
            await stack.enter_async_context(store.open())
            places[id(store)] = place
            return store

        yield make


@pytest.fixture
async def store(make_store: MakeStore) -> Storage:
    return await make_store()
