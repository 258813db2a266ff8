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

        async def make(**options: Any) -> Storage:
            nonlocal opened
            opened += 1
            store: Storage
            if backend == "sqlite":
                store = SqliteStorage(tmp_path / f"desk-{opened}.db", **options)
            else:
                store = PostgresStorage(await stack.enter_async_context(fresh_database()), **options)
            await stack.enter_async_context(store.open())
            return store

        yield make


@pytest.fixture
async def store(make_store: MakeStore) -> Storage:
    return await make_store()
