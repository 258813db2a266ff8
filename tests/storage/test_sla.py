"""SLA in storage on every backend: tickets judged by the storage clock, and the SQL filter and counts agreeing."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from mcp_desk.domain.clock import parse_ts
from mcp_desk.domain.models import SLA_STATES, Ticket
from mcp_desk.domain.sla import SlaTerms
from mcp_desk.storage.base import Storage, TicketChanges
from tests.clock import ManualUtcClock
from tests.storage.conftest import MakeStore

pytestmark = pytest.mark.anyio

TERMS = {
    "urgent": SlaTerms(first_response_minutes=10, resolution_minutes=60),
    "high": SlaTerms(first_response_minutes=20, resolution_minutes=120),
    "normal": SlaTerms(first_response_minutes=30, resolution_minutes=180),
    "low": SlaTerms(first_response_minutes=60, resolution_minutes=600),
}
MICROSECOND = timedelta(microseconds=1)


async def open_ticket(store: Storage, priority: str = "normal", title: str = "printer jam") -> Ticket:
    return await store.create_ticket(
        created_by="agent",
        title=title,
        description="d",
        priority=priority,
        tags=[],
        idempotency_key=None,
        requester="carol@example.com",
    )


async def move(store: Storage, ticket: Ticket, status: str) -> Ticket:
    return await store.update_ticket(ticket.id, TicketChanges(status=status), actor="agent", expected_version=None)


async def listed_states(store: Storage) -> dict[str, str | None]:
    page = await store.list_tickets(status=None, priority=None, assignee=None, cursor=None, limit=100)
    return {item.id: item.sla_state for item in page.items}


async def filtered(store: Storage, state: str) -> set[str]:
    page = await store.list_tickets(status=None, priority=None, assignee=None, cursor=None, limit=100, sla_state=state)
    assert page.next_cursor is None
    assert {item.sla_state for item in page.items} <= {state}
    return {item.id for item in page.items}


async def assert_everything_agrees(store: Storage, tickets: list[Ticket]) -> dict[str, str]:
    """get_ticket (Python), list items, the SQL filter and the SQL counts give every ticket the same state."""
    states = {t.id: (await store.get_ticket(t.id)).sla.state for t in tickets}  # type: ignore[union-attr]  # storage always sets it
    assert await listed_states(store) == states
    for state in SLA_STATES:
        assert await filtered(store, state) == {ticket_id for ticket_id, s in states.items() if s == state}, state
    priorities = {t.id: t.priority for t in tickets}
    finished = {t.id for t in tickets if (await store.get_ticket(t.id)).status in ("resolved", "closed")}
    expected = Counter((priorities[i], s) for i, s in states.items() if i not in finished)
    assert await store.sla_counts() == dict(expected)
    return states


async def test_a_new_ticket_has_due_times_from_the_policy_terms_and_the_storage_clock(make_store: MakeStore) -> None:
    clock = ManualUtcClock()
    store = await make_store(clock=clock, sla_terms=TERMS)
    created = await open_ticket(store, "urgent")

    assert created.sla is not None
    assert created.sla.first_response_due_at == "2026-01-05T09:10:00.000000Z"
    assert created.sla.resolution_due_at == "2026-01-05T10:00:00.000000Z"
    assert created.sla.state == "on_track"
    clock.advance(minutes=8)
    assert (await store.get_ticket(created.id)).sla == created.sla.model_copy(update={"state": "due_soon"})


async def test_every_view_agrees_at_each_due_time_to_the_microsecond(make_store: MakeStore) -> None:
    clock = ManualUtcClock()
    store = await make_store(clock=clock, sla_terms=TERMS)
    tickets = [await open_ticket(store, priority, title=priority) for priority in ("urgent", "high", "normal", "low")]
    replied = await open_ticket(store, "urgent", title="replied")
    clock.advance(minutes=5)
    await store.add_comment(replied.id, author="agent", body="on it", visibility="public")
    waiting = await open_ticket(store, "high", title="waits")
    clock.advance(minutes=2)
    await move(store, waiting, "waiting")
    done = await open_ticket(store, "urgent", title="done")
    clock.advance(minutes=1)
    await move(store, done, "resolved")
    everyone = [*tickets, replied, waiting, done]

    moments = set()
    for ticket in everyone:
        sla = (await store.get_ticket(ticket.id)).sla
        assert sla is not None
        for due, minutes in (
            (sla.first_response_due_at, TERMS[ticket.priority].first_response_minutes),
            (sla.resolution_due_at, TERMS[ticket.priority].resolution_minutes),
        ):
            for point in (parse_ts(due), parse_ts(due) - timedelta(minutes=minutes) / 5):
                moments |= {point - MICROSECOND, point, point + MICROSECOND}
    seen: set[str] = set()
    for moment in sorted(m for m in moments if m >= clock.now):
        clock.now = moment
        seen |= set((await assert_everything_agrees(store, everyone)).values())
    assert seen == set(SLA_STATES)


async def test_waiting_pauses_resolution_and_the_time_waited_stays_counted(make_store: MakeStore) -> None:
    clock = ManualUtcClock()
    store = await make_store(clock=clock, sla_terms=TERMS)
    ticket = await open_ticket(store, "urgent")
    await store.add_comment(ticket.id, author="agent", body="which printer?", visibility="public")
    clock.advance(minutes=20)
    await move(store, ticket, "waiting")
    clock.advance(hours=5)

    paused = (await store.get_ticket(ticket.id)).sla
    assert paused is not None
    assert (paused.state, paused.resolution_due_at) == ("paused", "2026-01-05T15:00:00.000000Z")
    assert await store.sla_counts() == {("urgent", "paused"): 1}
    await move(store, ticket, "in_progress")
    clock.advance(minutes=30)
    resumed = (await store.get_ticket(ticket.id)).sla
    assert resumed is not None
    assert (resumed.state, resumed.resolution_due_at) == ("due_soon", "2026-01-05T15:00:00.000000Z")
    clock.advance(minutes=11)
    assert await filtered(store, "breached") == {ticket.id}


async def test_only_a_public_reply_by_someone_other_than_the_requester_stops_the_first_response_clock(
    make_store: MakeStore,
) -> None:
    clock = ManualUtcClock()
    store = await make_store(clock=clock, sla_terms=TERMS)
    ticket = await open_ticket(store, "urgent")
    await store.add_comment(ticket.id, author="agent", body="internal note")
    await store.add_comment(ticket.id, author="carol@example.com", body="any news?", visibility="public")
    clock.advance(minutes=3)
    await store.add_comment(ticket.id, author="agent", body="rebooting it now", visibility="public")
    clock.advance(minutes=15)

    sla = (await store.get_ticket(ticket.id)).sla
    assert sla is not None
    assert (sla.first_responded_at, sla.state) == ("2026-01-05T09:03:00.000000Z", "on_track")


async def test_finished_tickets_are_met_or_breached_and_left_out_of_the_counts(make_store: MakeStore) -> None:
    clock = ManualUtcClock()
    store = await make_store(clock=clock, sla_terms=TERMS)
    quick = await open_ticket(store, "urgent", title="quick")
    late = await open_ticket(store, "urgent", title="late")
    await store.add_comment(quick.id, author="agent", body="fixed", visibility="public")
    await move(store, quick, "resolved")
    clock.advance(minutes=11)
    await move(store, late, "closed")
    clock.advance(hours=48)

    assert await filtered(store, "met") == {quick.id}
    assert await filtered(store, "breached") == {late.id}
    assert await store.sla_counts() == {}
    reopened = await move(store, late, "open")
    assert reopened.sla is not None and reopened.sla.state == "breached"
    assert await store.sla_counts() == {("urgent", "breached"): 1}


async def test_the_sla_filter_pages_through_every_match_exactly_once_newest_first(make_store: MakeStore) -> None:
    clock = ManualUtcClock()
    store = await make_store(clock=clock, sla_terms=TERMS)
    breached = []
    for n in range(7):
        breached.append(await open_ticket(store, "urgent", title=f"old {n}"))
        clock.advance(minutes=1)
        await open_ticket(store, "low", title=f"fresh {n}")
    clock.advance(minutes=10)

    seen, cursor = [], None
    while True:
        page = await store.list_tickets(
            status=None, priority=None, assignee=None, cursor=cursor, limit=2, sla_state="breached"
        )
        seen += [item.id for item in page.items]
        assert len(page.items) <= 2
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [t.id for t in reversed(breached)]
    on_track = await store.list_tickets(
        status="open", priority="low", assignee=None, cursor=None, limit=100, sla_state="on_track"
    )
    assert len(on_track.items) == 7


async def test_search_items_carry_their_sla_state(make_store: MakeStore) -> None:
    clock = ManualUtcClock()
    store = await make_store(clock=clock, sla_terms=TERMS)
    ticket = await open_ticket(store, "urgent", title="printer on fire")
    clock.advance(minutes=9)

    page = await store.search_tickets("printer", cursor=None, limit=10)
    assert [(item.id, item.sla_state) for item in page.items] == [(ticket.id, "due_soon")]


async def test_a_priority_change_applies_the_new_targets_from_creation(make_store: MakeStore) -> None:
    clock = ManualUtcClock()
    store = await make_store(clock=clock, sla_terms=TERMS)
    ticket = await open_ticket(store, "low")
    clock.advance(minutes=15)

    raised = await store.update_ticket(
        ticket.id, TicketChanges(priority="urgent"), actor="agent", expected_version=None
    )
    assert raised.sla is not None
    assert (raised.sla.state, raised.sla.first_response_due_at) == ("breached", "2026-01-05T09:10:00.000000Z")
    assert await store.sla_counts() == {("urgent", "breached"): 1}
