"""SQLite's own machinery is tested on a fresh SQLite store per test, in tmp_path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mcp_desk.storage.sqlite import SqliteStorage


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStorage]:
    storage = SqliteStorage(tmp_path / "desk.db")
    async with storage.open():
        yield storage
