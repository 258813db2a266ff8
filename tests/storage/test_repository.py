"""The repository contract on every backend: visibility, versions, idempotency, paging, tickets, the probe."""

from __future__ import annotations

import pytest

from mcp_desk.errors import Conflict, InvalidInput, NotFound
from mcp_desk.storage.base import NewComment, Storage, TicketChanges
from mcp_desk.storage.cursor import decode_cursor, encode_cursor
from tests.storage.helpers import ADMIN, ALICE, BOB, note, ticket

pytestmark = pytest.mark.anyio


async def test_notes_are_invisible_to_other_owners_but_not_to_read_all(store: Storage) -> None:
    created = await note(store)
    assert (await store.get_note(created.id, ALICE)).title == "t"
    assert (await store.get_note(created.id, ADMIN)).owner == "alice"
    with pytest.raises(NotFound) as foreign:
        await store.get_note(created.id, BOB)
    with pytest.raises(NotFound) as missing:
        await store.get_note("note_0000000000000000", BOB)
    assert foreign.value.public.replace(created.id, "X") == missing.value.public.replace("note_0000000000000000", "X")


async def test_a_stale_expected_version_is_a_conflict_and_changes_nothing(store: Storage) -> None:
    created = await note(store)
    updated = await store.update_note(created.id, ALICE, title="new", body=None, tags=None, expected_version=1)
    assert (updated.version, updated.title, updated.body) == (2, "new", "b")
    with pytest.raises(Conflict, match="version 2, not 1"):
        await store.update_note(created.id, ALICE, title="lost", body=None, tags=None, expected_version=1)
    assert (await store.get_note(created.id, ALICE)).title == "new"


async def test_an_idempotency_key_returns_the_first_object_and_refuses_other_arguments(store: Storage) -> None:
    first = await note(store, key="k1")
    again = await note(store, key="k1")
    assert again.id == first.id
    with pytest.raises(Conflict, match="different arguments"):
        await note(store, key="k1", title="other")
    other_owner = await note(store, owner="bob", key="k1")
    assert other_owner.id != first.id
    assert (await ticket(store, key="k1")).id == (await ticket(store, key="k1")).id


async def test_lists_page_through_every_item_exactly_once(store: Storage) -> None:
    ids = {(await note(store, title=f"n{i}")).id for i in range(7)}
    seen: list[str] = []
    cursor = None
    while True:
        page = await store.list_notes(ALICE, tag=None, cursor=cursor, limit=3)
        seen += [item.id for item in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sorted(seen) == sorted(ids)
    assert len(seen) == 7


async def test_a_forged_or_foreign_cursor_is_refused(store: Storage) -> None:
    with pytest.raises(InvalidInput, match="cursor"):
        await store.list_notes(ALICE, tag=None, cursor="garbage!!", limit=3)
    with pytest.raises(InvalidInput, match="cursor"):
        await store.list_tickets(
            status=None, priority=None, assignee=None, cursor=encode_cursor(["notes", "a", 1]), limit=3
        )
    for i in range(3):
        await note(store, title=f"alpha {i}")
    page = await store.search_notes(ALICE, "alpha", cursor=None, limit=1)
    assert page.next_cursor is not None
    with pytest.raises(InvalidInput, match="different query"):
        await store.search_notes(ALICE, "beta", cursor=page.next_cursor, limit=1)
    assert decode_cursor(None, "notes", 2) is None


async def test_a_refused_transition_rolls_back_the_comment_that_came_with_it(store: Storage) -> None:
    created = await ticket(store)
    await store.update_ticket(created.id, TicketChanges(status="closed"), actor="a", expected_version=None)
    with pytest.raises(Conflict, match="allowed next: open"):
        await store.update_ticket(
            created.id,
            TicketChanges(status="waiting"),
            actor="a",
            expected_version=None,
            comment=NewComment(author="a", body="lost?"),
        )
    after = await store.get_ticket(created.id)
    assert (after.status, after.comment_count) == ("closed", 0)


async def test_get_ticket_caps_comments_oldest_first_with_the_total(store: Storage) -> None:
    created = await ticket(store)
    for i in range(55):
        await store.add_comment(created.id, author="a", body=f"c{i}")
    got = await store.get_ticket(created.id)
    assert got.comment_count == 55
    assert [c.body for c in got.comments[:2]] == ["c0", "c1"]
    assert len(got.comments) == 50


async def test_deleting_a_note_removes_its_links(store: Storage) -> None:
    created, linked = await ticket(store), await note(store)
    after_link = await store.link_note(created.id, linked.id, ALICE)
    assert after_link.linked_notes == [linked.id]
    with pytest.raises(NotFound):
        await store.link_note(created.id, linked.id, BOB)
    await store.delete_note(linked.id, ALICE)
    assert (await store.get_ticket(created.id)).linked_notes == []


async def test_ticket_counts_and_id_completion(store: Storage) -> None:
    created = await ticket(store)
    await ticket(store)
    assert await store.ticket_counts() == {"open": 2}
    assert await store.ticket_ids(created.id[:10], 10)
    assert await store.ticket_ids("%", 10) == []


async def test_the_health_probe_writes_and_reads(store: Storage) -> None:
    await store.probe()
