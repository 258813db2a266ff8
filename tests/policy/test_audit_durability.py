"""How long a call waits for its audit records to reach the disk, at each durability level."""

from __future__ import annotations

import json
import shutil
import sqlite3
from contextlib import closing

import anyio
import pytest
from structlog.testing import capture_logs

from mcp_desk.app import App, create_app
from mcp_desk.policy.audit_log import verify_audit_log
from mcp_desk.storage.sqlite import SqliteStorage
from tests.conftest import MakeApp, connected, ok
from tests.groupcommit_support import flush_in_progress

pytestmark = pytest.mark.anyio


def journal_rows(app: App) -> list[tuple[str, int, str]]:
    """The audit_journal table, read on a connection of its own."""
    assert isinstance(app.storage, SqliteStorage)
    with closing(sqlite3.connect(app.storage.path)) as conn:
        return [tuple(row) for row in conn.execute("SELECT chain, seq, record FROM audit_journal ORDER BY seq")]


async def test_a_read_and_a_write_are_answered_while_the_audit_fsync_is_held(make_app: MakeApp) -> None:
    """A write's intent record commits in the write's own transaction: no fsync of the audit file to wait for."""
    app = make_app()
    async with connected(app) as client:
        ok(await client.call_tool("create_note", {"title": "t", "body": "b"}))
        await app.audit_log.sync()
        with anyio.fail_after(10):
            async with flush_in_progress(app.audit_log.syncs):
                listed = ok(await client.call_tool("list_notes", {}))
                assert [item["title"] for item in listed["items"]] == ["t"]
                ok(await client.call_tool("create_note", {"title": "t2", "body": "b2"}))
                assert app.audit_log.unsynced == 3  # the read's record, the write's intent and outcome: in the file
                chain, seq, record = journal_rows(app)[-1]  # ...and the intent in the database, with the note
                assert (chain, json.loads(record)["tool"]) == (app.audit_log.chain, "create_note")
                assert json.loads(record)["arguments"]["title"] == "t2"
        await app.audit_log.sync()
        assert app.audit_log.unsynced == 0
    assert journal_rows(app) == []  # forgotten once the audit file held them durably (at the latest, on close)
    lines = [json.loads(line) for line in app.settings.resolved_audit_log_path.read_text().splitlines()]
    assert (lines[seq - 1]["event_type"], lines[seq - 1]["arguments"]["title"]) == ("tool_invocation", "t2")


async def test_a_write_that_commits_nothing_waits_for_the_audit_fsync(make_app: MakeApp) -> None:
    app = make_app()
    async with connected(app) as client:
        answered = anyio.Event()

        async def refused_write() -> None:
            result = await client.call_tool("update_note", {"note_id": "note_0000000000000000", "title": "x"})
            assert result.is_error
            answered.set()

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg, flush_in_progress(app.audit_log.syncs):
                tg.start_soon(refused_write)
                await anyio.wait_all_tasks_blocked()
                assert not answered.is_set()  # no transaction carried its intent: the audit file's fsync does
                assert app.audit_log.syncs.queued >= 1
        assert answered.is_set()
    assert journal_rows(app) == []


async def test_intents_a_power_loss_took_from_the_audit_file_are_appended_again_at_start(make_app: MakeApp) -> None:
    """A snapshot of the files as a power loss could leave them: the note committed, its intent not in the file."""
    app = make_app()
    data = app.settings.storage_path
    snapshot = data.with_name("snapshot")
    async with connected(app) as client:
        ok(await client.call_tool("create_note", {"title": "first", "body": "b"}))
        await app.audit_log.sync()
        durable = app.settings.resolved_audit_log_path.stat().st_size
        async with flush_in_progress(app.audit_log.syncs):
            created = ok(await client.call_tool("create_note", {"title": "lost", "body": "b"}))
            shutil.copytree(data, snapshot)  # the database (file and WAL) as committed
    shutil.rmtree(data)
    snapshot.rename(data)
    audit = app.settings.resolved_audit_log_path
    with audit.open("r+b") as handle:
        handle.truncate(durable)  # every record after the last fsync is gone
    survivors = audit.read_text().splitlines()

    again = create_app(app.settings, transport="memory")
    with capture_logs() as logs:
        async with connected(again) as client:
            assert ok(await client.call_tool("get_note", {"note_id": created["id"]}))["title"] == "lost"
    assert any(entry["event"] == "audit_intents_recovered" and entry["count"] == 1 for entry in logs)
    lines = audit.read_text().splitlines()
    assert lines[: len(survivors)] == survivors
    recovered = json.loads(lines[len(survivors)])
    assert recovered["seq"] == len(survivors) + 1
    assert recovered["recovered_seq"] > len(survivors)  # the seq it had in the records the power loss took
    assert (recovered["event_type"], recovered["tool"]) == ("tool_invocation", "create_note")
    assert recovered["arguments"]["title"] == "lost"
    assert verify_audit_log(audit).ok
    assert journal_rows(again) == []


async def test_with_process_durability_a_write_never_waits_for_an_fsync(make_app: MakeApp) -> None:
    app = make_app(durability="process")
    async with connected(app) as client:
        with anyio.fail_after(10):
            async with flush_in_progress(app.audit_log.syncs):
                created = ok(await client.call_tool("create_note", {"title": "t", "body": "b"}))
                assert app.audit_log.syncs.queued == 0
        got = ok(await client.call_tool("get_note", {"note_id": created["id"]}))
        assert got["title"] == "t"
    records = app.settings.resolved_audit_log_path.read_text().splitlines()
    assert sum('"tool_invocation"' in line for line in records) == 1


@pytest.mark.parametrize(
    ("durability", "audit_fsync", "fsynced"),
    [("power", None, True), ("process", None, False), ("power", False, False), ("process", True, True)],
)
def test_audit_fsync_follows_the_durability_level_unless_the_deprecated_key_is_set(
    make_app: MakeApp, durability: str, audit_fsync: bool | None, fsynced: bool
) -> None:
    app = make_app(durability=durability, audit_fsync=audit_fsync)
    assert app.settings.resolved_audit_fsync is fsynced
    assert isinstance(app.storage, SqliteStorage)
    assert app.storage.durability == durability
