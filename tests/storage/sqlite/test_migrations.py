"""Schema migrations: applied once and in order; a newer schema refuses to start."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mcp_desk.storage.sqlite import SqliteStorage
from mcp_desk.storage.sqlite.migrations import MIGRATIONS
from tests.storage.sqlite.helpers import ALICE

pytestmark = pytest.mark.anyio


async def test_migrations_are_applied_once_and_recorded(tmp_path: Path) -> None:
    path = tmp_path / "desk.db"
    for _ in range(2):
        async with SqliteStorage(path).open():
            pass
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_a_newer_schema_than_the_server_knows_refuses_to_start(tmp_path: Path) -> None:
    path = tmp_path / "desk.db"
    sqlite3.connect(path).execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(RuntimeError, match="newer than this server"):
        async with SqliteStorage(path).open():
            pass


async def test_a_version_1_database_is_migrated_and_its_notes_are_searchable(tmp_path: Path) -> None:
    path = tmp_path / "desk.db"
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0] + "\nPRAGMA user_version = 1;")
    conn.execute(
        "INSERT INTO notes (id, owner, title, body, tags, created_at, updated_at) VALUES (?,?,?,?,?,?,?)",
        ("note_1", "alice", "legacy", "written before the upgrade", "[]", "t", "t"),
    )
    conn.commit()
    conn.close()
    storage = SqliteStorage(path)
    async with storage.open():
        found = await storage.search_notes(ALICE, "upgrade", cursor=None, limit=5)
    assert [item.id for item in found.items] == ["note_1"]
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
