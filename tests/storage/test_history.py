"""Ticket history and the SLA clock facts: one entry per change, in the change's transaction, on every backend."""

from __future__ import annotations

import pytest

from mcp_desk.domain.models import FieldChange, HistoryEntry
from mcp_desk.errors import Conflict, InvalidInput, NotFound
from mcp_desk.storage.base import NewComment, Storage, TicketChanges
from mcp_desk.storage.cursor import encode_cursor
from tests.clock import ManualUtcClock
from tests.storage.conftest import MakeStore
from tests.storage.helpers import ALICE, note

pytestmark = pytest.mark.anyio


@pytest.fixture
def clock() -> ManualUtcClock:
    return ManualUtcClock()


@pytest.fixture
async def timed(make_store: MakeStore, clock: ManualUtcClock) -> Storage:
    """A store whose every timestamp comes from the test's clock."""
    return await make_store(clock=clock)


async def _ticket(store: Storage, requester: str | None = "rita@example.com") -> str:
    created = await store.create_ticket(
        created_by="alice",
        title="printer jam",
        description="d",
        priority="high",
        tags=["hw"],
        idempotency_key="k1",
        requester=requester,
    )
    return created.id


async def _entries(store: Storage, ticket_id: str) -> list[HistoryEntry]:
    return (await store.ticket_history(ticket_id, cursor=None, limit=100)).items


async def test_creating_a_ticket_records_who_when_and_its_first_values(timed: Storage, clock: ManualUtcClock) -> None:
    ticket_id = await _ticket(timed)
    await _ticket(timed)  # the same idempotency key: the same ticket, no second entry
    [entry] = await _entries(timed, ticket_id)
    assert (entry.kind, entry.actor, entry.at) == ("created", "alice", "2026-01-05T09:00:00.000000Z")
    assert entry.changes == {
        "title": FieldChange(old=None, new="printer jam"),
        "status": FieldChange(old=None, new="open"),
        "priority": FieldChange(old=None, new="high"),
        "tags": FieldChange(old=None, new=["hw"]),
        "requester": FieldChange(old=None, new="rita@example.com"),
    }
    got = await timed.get_ticket(ticket_id)
    assert (got.requester, got.created_at) == ("rita@example.com", entry.at)


async def test_an_edit_records_old_and_new_values_of_the_changed_fields_only(
    timed: Storage, clock: ManualUtcClock
) -> None:
    ticket_id = await _ticket(timed)
    clock.advance(minutes=5)
    changes = TicketChanges(title="printer on fire", priority="high", tags=["hw", "urgent"], requester="")
    updated = await timed.update_ticket(ticket_id, changes, actor="bob", expected_version=1)
    entry = (await _entries(timed, ticket_id))[-1]
    assert (entry.kind, entry.actor, entry.at) == ("updated", "bob", "2026-01-05T09:05:00.000000Z")
    assert entry.changes == {
        "title": FieldChange(old="printer jam", new="printer on fire"),
        "tags": FieldChange(old=["hw"], new=["hw", "urgent"]),
        "requester": FieldChange(old="rita@example.com", new=None),
    }
    assert (updated.version, updated.requester, updated.updated_at) == (2, None, entry.at)


async def test_an_edit_that_changes_nothing_records_nothing_and_keeps_the_version(timed: Storage) -> None:
    ticket_id = await _ticket(timed)
    same = TicketChanges(title="printer jam", priority="high", tags=["hw"])
    unchanged = await timed.update_ticket(ticket_id, same, actor="bob", expected_version=1)
    assert unchanged.version == 1
    with pytest.raises(Conflict, match="is open; allowed next: in_progress"):  # not a transition: refused
        await timed.update_ticket(ticket_id, TicketChanges(status="open"), actor="bob", expected_version=1)
    assert [e.kind for e in await _entries(timed, ticket_id)] == ["created"]
    assert (await timed.get_ticket(ticket_id)).version == 1


async def test_status_assignment_comment_and_link_each_record_one_entry_of_their_kind(timed: Storage) -> None:
    ticket_id = await _ticket(timed)
    linked = await note(timed)
    await timed.update_ticket(ticket_id, TicketChanges(status="in_progress"), actor="bob", expected_version=None)
    await timed.update_ticket(ticket_id, TicketChanges(assignee="carol"), actor="bob", expected_version=None)
    comment = await timed.add_comment(ticket_id, author="carol", body="on it", visibility="public")
    await timed.link_note(ticket_id, linked.id, ALICE)
    await timed.link_note(ticket_id, linked.id, ALICE)  # linking twice changes nothing
    entries = await _entries(timed, ticket_id)
    assert [e.kind for e in entries] == ["created", "status", "assigned", "commented", "linked"]
    status, assigned, commented, link = entries[1:]
    assert status.changes == {"status": FieldChange(old="open", new="in_progress")}
    assert assigned.changes == {"assignee": FieldChange(old=None, new="carol")}
    assert (commented.actor, commented.changes) == ("carol", {})
    assert commented.detail == {"comment_id": comment.id, "visibility": "public"}
    assert (link.actor, link.detail) == ("alice", {"note_id": linked.id})
    assert (await timed.get_ticket(ticket_id)).version == 5


async def test_a_status_move_with_a_comment_is_one_entry_naming_the_comment(timed: Storage) -> None:
    ticket_id = await _ticket(timed)
    reply = NewComment(author="bob", body="waiting for the toner", visibility="public")
    moved = await timed.update_ticket(
        ticket_id, TicketChanges(status="waiting"), actor="bob", expected_version=1, comment=reply
    )
    [posted] = moved.comments
    assert (posted.author, posted.visibility, posted.body) == ("bob", "public", "waiting for the toner")
    entry = (await _entries(timed, ticket_id))[-1]
    assert (entry.kind, entry.detail) == ("status", {"comment_id": posted.id, "visibility": "public"})
    assert "toner" not in entry.model_dump_json()


async def test_a_macro_run_is_one_entry_of_kind_macro_with_its_detail(timed: Storage) -> None:
    ticket_id = await _ticket(timed)
    changes = TicketChanges(status="resolved", priority="low", assignee="bob")
    await timed.update_ticket(
        ticket_id,
        changes,
        actor="bob",
        expected_version=1,
        comment=NewComment(author="bob", body="fixed", visibility="public"),
        history_kind="macro",
        detail={"macro": "close_fixed"},
    )
    entry = (await _entries(timed, ticket_id))[-1]
    assert entry.kind == "macro"
    assert set(entry.changes) == {"status", "priority", "assignee"}
    assert entry.detail["macro"] == "close_fixed"
    assert entry.detail["visibility"] == "public"


async def test_an_export_is_recorded_without_changing_the_ticket(timed: Storage) -> None:
    ticket_id = await _ticket(timed)
    recorded = await timed.record_export(ticket_id, actor="bob", filename="printer.md")
    assert (recorded.kind, recorded.detail) == ("exported", {"filename": "printer.md"})
    assert (await _entries(timed, ticket_id))[-1] == recorded
    assert (await timed.get_ticket(ticket_id)).version == 1


async def test_refused_changes_record_nothing(timed: Storage) -> None:
    ticket_id = await _ticket(timed)
    with pytest.raises(Conflict, match="version"):
        await timed.update_ticket(ticket_id, TicketChanges(title="x"), actor="bob", expected_version=7)
    await timed.update_ticket(ticket_id, TicketChanges(status="closed"), actor="bob", expected_version=None)
    with pytest.raises(Conflict, match="allowed next: open"):
        await timed.update_ticket(
            ticket_id,
            TicketChanges(status="waiting"),
            actor="bob",
            expected_version=None,
            comment=NewComment(author="bob", body="lost"),
        )
    for missing in (
        timed.update_ticket("tkt_missing", TicketChanges(title="x"), actor="bob", expected_version=None),
        timed.add_comment("tkt_missing", author="bob", body="x"),
        timed.record_export("tkt_missing", actor="bob", filename="x.md"),
        timed.ticket_history("tkt_missing", cursor=None, limit=5),
    ):
        with pytest.raises(NotFound):
            await missing
    assert [e.kind for e in await _entries(timed, ticket_id)] == ["created", "status"]
    assert (await timed.get_ticket(ticket_id)).comment_count == 0


async def test_history_pages_oldest_first_through_every_entry_once(timed: Storage) -> None:
    ticket_id = await _ticket(timed)
    for i in range(6):
        await timed.add_comment(ticket_id, author="bob", body=f"c{i}")
    seen: list[HistoryEntry] = []
    cursor: str | None = None
    while True:
        page = await timed.ticket_history(ticket_id, cursor=cursor, limit=3)
        seen.extend(page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert [e.kind for e in seen] == ["created"] + ["commented"] * 6
    assert len({e.id for e in seen}) == 7
    with pytest.raises(InvalidInput, match="cursor"):
        await timed.ticket_history(ticket_id, cursor=encode_cursor(["tickets", "a", 1]), limit=3)
    with pytest.raises(InvalidInput, match="cursor"):
        await timed.ticket_history(ticket_id, cursor=encode_cursor(["history", "x"]), limit=3)


async def test_deleting_a_ticket_deletes_its_history(timed: Storage) -> None:
    ticket_id = await _ticket(timed)
    await timed.delete_ticket(ticket_id)
    with pytest.raises(NotFound):
        await timed.ticket_history(ticket_id, cursor=None, limit=5)


async def test_time_spent_waiting_is_paused_and_resolution_is_stamped_and_cleared(
    timed: Storage, clock: ManualUtcClock
) -> None:
    ticket_id = await _ticket(timed)
    clock.advance(minutes=10)
    waiting = await timed.update_ticket(ticket_id, TicketChanges(status="waiting"), actor="bob", expected_version=None)
    assert (waiting.clock.waiting_since, waiting.clock.paused_seconds) == ("2026-01-05T09:10:00.000000Z", 0)
    clock.advance(minutes=30)
    back = await timed.update_ticket(ticket_id, TicketChanges(status="in_progress"), actor="bob", expected_version=None)
    assert (back.clock.waiting_since, back.clock.paused_seconds) == (None, 1800)
    await timed.update_ticket(ticket_id, TicketChanges(status="waiting"), actor="bob", expected_version=None)
    clock.advance(seconds=90)
    resolved = await timed.update_ticket(
        ticket_id, TicketChanges(status="resolved"), actor="bob", expected_version=None
    )
    assert resolved.clock.paused_seconds == 1890
    assert resolved.clock.resolved_at == "2026-01-05T09:41:30.000000Z"
    clock.advance(hours=1)
    closed = await timed.update_ticket(ticket_id, TicketChanges(status="closed"), actor="bob", expected_version=None)
    assert closed.clock.resolved_at == resolved.clock.resolved_at  # closing keeps the resolution time
    reopened = await timed.update_ticket(ticket_id, TicketChanges(status="open"), actor="bob", expected_version=None)
    assert (reopened.clock.resolved_at, reopened.clock.waiting_since) == (None, None)


async def test_the_first_public_reply_by_someone_other_than_the_requester_counts_as_the_response(
    timed: Storage, clock: ManualUtcClock
) -> None:
    ticket_id = await _ticket(timed, requester="rita@example.com")
    clock.advance(minutes=1)
    await timed.add_comment(ticket_id, author="bob", body="internal note")
    await timed.add_comment(ticket_id, author="rita@example.com", body="any news?", visibility="public")
    assert (await timed.get_ticket(ticket_id)).clock.first_responded_at is None
    clock.advance(minutes=2)
    await timed.add_comment(ticket_id, author="bob", body="we are on it", visibility="public")
    clock.advance(minutes=3)
    await timed.add_comment(ticket_id, author="carol", body="still on it", visibility="public")
    got = await timed.get_ticket(ticket_id)
    assert got.clock.first_responded_at == "2026-01-05T09:03:00.000000Z"
    assert [c.visibility for c in got.comments] == ["internal", "public", "public", "public"]


async def test_the_requester_is_part_of_an_idempotent_create(timed: Storage) -> None:
    first = await timed.create_ticket(
        created_by="alice", title="t", description="d", priority="low", tags=[], idempotency_key="k"
    )
    again = await timed.create_ticket(
        created_by="alice", title="t", description="d", priority="low", tags=[], idempotency_key="k", requester=None
    )
    assert again.id == first.id
    with pytest.raises(Conflict, match="idempotency_key"):
        await timed.create_ticket(
            created_by="alice", title="t", description="d", priority="low", tags=[], idempotency_key="k", requester="r"
        )
