"""How long a call waits for its audit records to reach the disk, at each durability level."""

from __future__ import annotations

import anyio
import pytest

from mcp_desk.storage.sqlite import SqliteStorage
from tests.conftest import MakeApp, connected, ok
from tests.groupcommit_support import flush_in_progress

pytestmark = pytest.mark.anyio


async def test_a_read_is_answered_while_the_audit_fsync_is_held_and_a_write_waits_for_it(make_app: MakeApp) -> None:
    app = make_app()
    async with connected(app) as client:
        ok(await client.call_tool("create_note", {"title": "t", "body": "b"}))
        written = anyio.Event()

        async def write() -> None:
            ok(await client.call_tool("create_note", {"title": "t2", "body": "b2"}))
            written.set()

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg, flush_in_progress(app.audit_log.syncs):
                before = app.audit_log.unsynced
                listed = ok(await client.call_tool("list_notes", {}))
                assert [item["title"] for item in listed["items"]] == ["t"]
                assert app.audit_log.unsynced == before + 1  # its record is in the file, not yet on disk
                tg.start_soon(write)
                await anyio.wait_all_tasks_blocked()
                assert not written.is_set()  # a write is answered only once its intent record is on disk
                assert app.audit_log.syncs.queued >= 1
        assert written.is_set()
        await app.audit_log.sync()
        assert app.audit_log.unsynced == 0


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
