"""Schema migrations: applied once, in order, atomically, and safely when several servers start at once."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import anyio
import pytest

from mcp_desk.storage.base import NoteScope
from mcp_desk.storage.sqlite import SqliteStorage, rows
from mcp_desk.storage.sqlite.migrations import MIGRATIONS, migrate, statements
from mcp_desk.storage.sqlite.repository import SUMMARY_COLUMNS
from tests.storage.helpers import ALICE

pytestmark = pytest.mark.anyio
STARTS = 4
ROUNDS = 25


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


def _start_together(path: Path, starts: int) -> list[BaseException | None]:
    """Open storage on `path` from `starts` threads released at the same moment; each one's error or None."""
    barrier = threading.Barrier(starts)
    outcomes: list[BaseException | None] = [None] * starts

    async def open_and_close() -> None:
        async with SqliteStorage(path).open():
            pass

    def start(i: int) -> None:
        barrier.wait(10)
        try:
            anyio.run(open_and_close)
        except BaseException as exc:  # every failure is reported to the test, whatever it is
            outcomes[i] = exc

    threads = [threading.Thread(target=start, args=(i,)) for i in range(starts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return outcomes


def test_servers_started_at_once_on_a_fresh_file_all_start_and_migrate_it_once(tmp_path: Path) -> None:
    """Before migrations re-read the version under the write lock, some starts failed: `table notes already exists`."""
    for round_ in range(ROUNDS):
        path = tmp_path / f"desk-{round_}.db"
        assert _start_together(path, STARTS) == [None] * STARTS
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'notes_fts'").fetchone()[0] == 1
        conn.close()


def test_a_failing_migration_leaves_the_schema_as_it_was(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "desk.db", isolation_level=None)
    conn.execute("CREATE TABLE docs (x)")  # the first migration's CREATE TABLE docs will fail
    with pytest.raises(sqlite3.OperationalError, match="already exists"):
        migrate(conn)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'notes'").fetchone()[0] == 0
    assert not conn.in_transaction


def test_scripts_split_into_whole_statements_triggers_included() -> None:
    script = "CREATE TABLE a (x); CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; SELECT 2; END;\n"
    assert statements(script) == [
        "CREATE TABLE a (x);",
        "CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; SELECT 2; END;",
    ]
    assert statements("SELECT ';'; ") == ["SELECT ';';"]
    with pytest.raises(ValueError, match="incomplete statement"):
        statements("CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1;")


@pytest.mark.parametrize("scope", [ALICE, NoteScope(owner="admin", all_owners=True)])
def test_listing_notes_newest_first_reads_an_index_instead_of_sorting_the_table(
    tmp_path: Path, scope: NoteScope
) -> None:
    """For one owner and for notes:read_all alike: a page costs its own rows, not a sort of every note."""
    conn = sqlite3.connect(tmp_path / "desk.db", isolation_level=None)
    migrate(conn)
    where, args = rows.note_visibility(scope, "n")
    sql = f"SELECT {SUMMARY_COLUMNS} FROM notes n WHERE {where} ORDER BY n.updated_at DESC, n.seq DESC LIMIT 21"  # noqa: S608  # constants only
    plan = " ".join(str(step[3]) for step in conn.execute(f"EXPLAIN QUERY PLAN {sql}", args))
    assert "USING INDEX" in plan
    assert "TEMP B-TREE" not in plan


async def test_tickets_of_a_version_3_database_gain_a_created_entry_and_their_clock_facts(tmp_path: Path) -> None:
    path = tmp_path / "desk.db"
    conn = sqlite3.connect(path)
    conn.executescript("".join(MIGRATIONS[:3]) + "\nPRAGMA user_version = 3;")
    for seq, status in ((1, "waiting"), (2, "resolved")):
        conn.execute(
            "INSERT INTO tickets (seq, id, title, description, status, priority, created_by, created_at, updated_at)"
            " VALUES (?, ?, 't', 'd', ?, 'normal', 'alice', '2026-01-01T00:00:00.000000Z', ?)",
            (seq, f"tkt_{seq}", status, f"2026-01-0{seq + 1}T00:00:00.000000Z"),
        )
    conn.execute("INSERT INTO comments (id, ticket_seq, author, body, created_at) VALUES ('cmt_1', 1, 'a', 'b', 't')")
    conn.commit()
    conn.close()
    storage = SqliteStorage(path)
    async with storage.open():
        waiting, resolved = await storage.get_ticket("tkt_1"), await storage.get_ticket("tkt_2")
        history = await storage.ticket_history("tkt_1", cursor=None, limit=5)
        await storage.delete_ticket("tkt_2")
    assert (waiting.requester, waiting.clock.waiting_since, waiting.clock.resolved_at) == (
        None,
        "2026-01-02T00:00:00.000000Z",
        None,
    )
    assert resolved.clock.resolved_at == "2026-01-03T00:00:00.000000Z"
    assert [c.visibility for c in waiting.comments] == ["internal"]
    [entry] = history.items
    assert (entry.kind, entry.actor, entry.at, entry.detail) == (
        "created",
        "alice",
        "2026-01-01T00:00:00.000000Z",
        {"migrated": True},
    )
    left = sqlite3.connect(path).execute("SELECT ticket_seq FROM ticket_history").fetchall()
    assert left == [(1,)]  # the deleted ticket's history went with it
