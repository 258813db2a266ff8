"""SLA computation: due times, pauses while waiting, and the state at any moment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_desk.domain.clock import format_ts, parse_ts
from mcp_desk.domain.models import STATUSES, TicketClock
from mcp_desk.domain.sla import DEFAULT_TERMS, SlaTerms, compute_sla

CREATED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
# 60 minutes to the first response, 600 to resolution: 20% is 12 and 120 minutes.
TERMS = SlaTerms(first_response_minutes=60, resolution_minutes=600)


def at(minutes: float) -> datetime:
    """The moment `minutes` after the ticket was created."""
    return CREATED + timedelta(minutes=minutes)


def ts(minutes: float) -> str:
    """The stored timestamp `minutes` after creation."""
    return format_ts(at(minutes))


def state(minutes: float, status: str = "open", terms: SlaTerms = TERMS, **facts: str | int) -> str:
    """The SLA state `minutes` after creation."""
    clock = TicketClock.model_validate(facts)
    return compute_sla(terms=terms, status=status, created_at=ts(0), clock=clock, now=at(minutes)).state


def test_the_shipped_targets_are_the_documented_ones() -> None:
    assert {p: (t.first_response_minutes, t.resolution_minutes) for p, t in DEFAULT_TERMS.items()} == {
        "urgent": (30, 240),
        "high": (120, 1440),
        "normal": (480, 4320),
        "low": (1440, 10080),
    }


def test_due_times_count_from_creation() -> None:
    sla = compute_sla(terms=TERMS, status="open", created_at=ts(0), clock=TicketClock(), now=at(1))

    assert sla.first_response_due_at == ts(60) == "2026-03-02T10:00:00.000000Z"
    assert sla.resolution_due_at == ts(600)
    assert sla.first_responded_at is None
    assert sla.state == "on_track"


@pytest.mark.parametrize(
    ("minutes", "expected"),
    [
        (0, "on_track"),
        (47.99, "on_track"),
        (48, "due_soon"),  # exactly 20% of the first-response target left
        (59.99, "due_soon"),
        (60, "due_soon"),  # due now: not yet passed
        (60.01, "breached"),
    ],
)
def test_an_unanswered_ticket_goes_due_soon_then_breached(minutes: float, expected: str) -> None:
    assert state(minutes) == expected


@pytest.mark.parametrize("status", ["open", "in_progress"])
def test_a_public_reply_in_time_stops_the_first_response_clock(status: str) -> None:
    assert state(100, status, first_responded_at=ts(30)) == "on_track"
    assert state(479, status, first_responded_at=ts(30)) == "on_track"
    assert state(480, status, first_responded_at=ts(30)) == "due_soon"  # 120 of 600 minutes left
    assert state(600, status, first_responded_at=ts(30)) == "due_soon"
    assert state(600.01, status, first_responded_at=ts(30)) == "breached"


def test_a_reply_exactly_at_the_due_time_is_in_time() -> None:
    assert state(61, first_responded_at=ts(60)) == "on_track"


def test_a_late_first_reply_leaves_the_ticket_breached_while_it_is_open() -> None:
    assert state(61, first_responded_at=ts(60.5)) == "breached"
    assert state(300, "in_progress", first_responded_at=ts(60.5)) == "breached"


def test_a_late_first_reply_makes_a_ticket_resolved_in_time_breached_not_met() -> None:
    assert state(999, "resolved", first_responded_at=ts(61), resolved_at=ts(100)) == "breached"


@pytest.mark.parametrize("status", ["resolved", "closed"])
def test_a_ticket_finished_within_both_targets_is_met(status: str) -> None:
    assert state(5000, status, first_responded_at=ts(10), resolved_at=ts(600)) == "met"


def test_a_ticket_resolved_after_its_resolution_target_is_breached() -> None:
    assert state(700, "resolved", first_responded_at=ts(10), resolved_at=ts(600.5)) == "breached"


def test_a_ticket_resolved_without_a_reply_is_judged_at_its_resolution() -> None:
    assert state(5000, "closed", resolved_at=ts(59)) == "met"
    assert state(5000, "closed", resolved_at=ts(61)) == "breached"


def test_a_finished_ticket_keeps_its_due_times_as_time_goes_on() -> None:
    facts = TicketClock(first_responded_at=ts(5), paused_seconds=600, resolved_at=ts(300))
    early = compute_sla(terms=TERMS, status="resolved", created_at=ts(0), clock=facts, now=at(301))
    late = compute_sla(terms=TERMS, status="resolved", created_at=ts(0), clock=facts, now=at(90_000))

    assert early == late
    assert late.resolution_due_at == ts(610)
    assert late.first_responded_at == ts(5)


def test_waiting_pauses_the_resolution_clock_including_the_wait_in_progress() -> None:
    facts = TicketClock(first_responded_at=ts(10), waiting_since=ts(100), paused_seconds=30 * 60)
    sla = compute_sla(terms=TERMS, status="waiting", created_at=ts(0), clock=facts, now=at(1000))

    assert sla.state == "paused"
    assert sla.resolution_due_at == ts(600 + 30 + 900)  # 30 minutes of earlier waits, 900 of this one
    assert sla.first_response_due_at == ts(60)


def test_time_spent_waiting_does_not_count_after_the_wait() -> None:
    two_hours = 2 * 60 * 60
    assert state(599, "in_progress", first_responded_at=ts(10), paused_seconds=two_hours) == "on_track"
    assert state(720, "in_progress", first_responded_at=ts(10), paused_seconds=two_hours) == "due_soon"
    assert state(600.01 + 120, "in_progress", first_responded_at=ts(10), paused_seconds=two_hours) == "breached"


def test_a_wait_does_not_pause_the_first_response_target() -> None:
    assert state(59, "waiting", waiting_since=ts(1)) == "paused"
    assert state(61, "waiting", waiting_since=ts(1)) == "breached"


def test_a_ticket_already_breached_stays_breached_while_waiting() -> None:
    assert state(700, "waiting", first_responded_at=ts(10), waiting_since=ts(650)) == "breached"


def test_a_wait_that_ended_at_resolution_counts_toward_the_pause() -> None:
    facts = TicketClock(first_responded_at=ts(10), waiting_since=ts(100), resolved_at=ts(800))
    sla = compute_sla(terms=TERMS, status="resolved", created_at=ts(0), clock=facts, now=at(9000))

    assert sla.resolution_due_at == ts(600 + 700)
    assert sla.state == "met"


def test_a_reopened_ticket_is_judged_as_open_again_without_restarting_its_targets() -> None:
    assert state(100, "open", first_responded_at=ts(10)) == "on_track"
    assert state(700, "open", first_responded_at=ts(10)) == "breached"


minutes = st.integers(min_value=0, max_value=20_000)
terms = st.builds(
    lambda first, extra: SlaTerms(first_response_minutes=first, resolution_minutes=first + extra),
    st.integers(min_value=1, max_value=2000),
    st.integers(min_value=0, max_value=10_000),
)


@given(terms=terms, times=st.lists(minutes, min_size=2, max_size=6))
def test_an_untouched_ticket_only_moves_forward_through_the_states(terms: SlaTerms, times: list[int]) -> None:
    order = ["on_track", "due_soon", "breached"]
    states = [order.index(state(t, "in_progress", terms)) for t in sorted(times)]
    assert states == sorted(states)


@given(
    terms=terms,
    status=st.sampled_from(STATUSES),
    now=minutes,
    responded=st.none() | minutes,
    paused=st.integers(min_value=0, max_value=500_000),
)
def test_met_only_for_finished_tickets_and_paused_only_while_waiting(
    terms: SlaTerms, status: str, now: int, responded: int | None, paused: int
) -> None:
    finished = status in ("resolved", "closed")
    facts = TicketClock(
        first_responded_at=None if responded is None else ts(min(responded, now)),
        waiting_since=ts(now) if status == "waiting" else None,
        paused_seconds=paused,
        resolved_at=ts(now) if finished else None,
    )
    sla = compute_sla(terms=terms, status=status, created_at=ts(0), clock=facts, now=at(now))

    assert (sla.state == "met") <= finished
    assert (sla.state == "paused") <= (status == "waiting")
    assert parse_ts(sla.resolution_due_at) == at(terms.resolution_minutes) + timedelta(seconds=paused)
    assert parse_ts(sla.first_response_due_at) == at(terms.first_response_minutes)


@given(terms=terms, wait=minutes, now=minutes)
def test_the_wait_in_progress_pushes_resolution_by_exactly_its_length(terms: SlaTerms, wait: int, now: int) -> None:
    facts = TicketClock(waiting_since=ts(now), first_responded_at=ts(0))
    sla = compute_sla(terms=terms, status="waiting", created_at=ts(0), clock=facts, now=at(now + wait))

    assert parse_ts(sla.resolution_due_at) - at(terms.resolution_minutes) == timedelta(minutes=wait)
    assert sla.state in ("paused", "breached")
