"""Service-level targets: when a ticket's first reply and its resolution are due, and how it stands now.

Pure computation over the facts storage keeps about a ticket's clock and a `now` the caller passes
in; every time is UTC. The targets come by priority from the policy (`[sla.PRIORITY]`). The rules:

- Both due times count from `created_at`, with the targets of the ticket's current priority (a
  priority change moves both due times as if the ticket had always had it). The resolution due time
  moves later by every second the ticket spent `waiting`, the wait in progress included; the
  first-response target never pauses.
- A target is met when its event happens at or before its due time: the first public comment by
  someone other than the requester, or the resolution. A ticket resolved or closed without any public
  reply has its first-response target judged at the resolution time.
- A missed target stays missed. A late first reply leaves the ticket `breached` while it stays open,
  and a ticket resolved after any missed target is `breached`, never `met`. Reopening clears
  `resolved_at`, so the ticket is judged as open again; its due times do not restart.
- The state is the first that applies: `breached` (a target was missed), `met` (resolved or closed),
  `paused` (waiting), `due_soon` (a pending target has at most 20% of its time left), `on_track`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from mcp_desk.domain.clock import format_ts, parse_ts
from mcp_desk.domain.models import Priority, Sla, SlaState

FINISHED_STATUSES = frozenset({"resolved", "closed"})
# due_soon: at most DUE_SOON_PARTS-th of a target's time is left (1/5 = 20%).
DUE_SOON_PARTS = 5
MAX_TARGET_MINUTES = 366 * 24 * 60


@dataclass(frozen=True, kw_only=True)
class SlaTerms:
    """The targets for one priority, in minutes from the ticket's creation."""

    first_response_minutes: int
    resolution_minutes: int

    @property
    def first_response(self) -> timedelta:
        """The first-response target as a duration."""
        return timedelta(minutes=self.first_response_minutes)

    @property
    def resolution(self) -> timedelta:
        """The resolution target as a duration (working time: waits do not count)."""
        return timedelta(minutes=self.resolution_minutes)


DEFAULT_TERMS: Mapping[Priority, SlaTerms] = {
    "urgent": SlaTerms(first_response_minutes=30, resolution_minutes=240),
    "high": SlaTerms(first_response_minutes=120, resolution_minutes=1440),
    "normal": SlaTerms(first_response_minutes=480, resolution_minutes=4320),
    "low": SlaTerms(first_response_minutes=1440, resolution_minutes=10080),
}


class ClockFacts(Protocol):
    """What storage records about a ticket's clock: `TicketClock`, or a backend's lighter view of a row."""

    @property
    def first_responded_at(self) -> str | None: ...
    @property
    def waiting_since(self) -> str | None: ...
    @property
    def paused_seconds(self) -> int: ...
    @property
    def resolved_at(self) -> str | None: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class Judgement:
    """A ticket's SLA state and due times at one moment."""

    state: SlaState
    first_response_due: datetime
    resolution_due: datetime


def compute_sla(*, terms: SlaTerms, status: str, created_at: str, clock: ClockFacts, now: datetime) -> Sla:
    """Where a ticket stands against `terms` at `now` (an aware datetime), as clients see it."""
    judged = judge(terms=terms, status=status, created_at=created_at, clock=clock, now=now)
    return Sla(
        state=judged.state,
        first_response_due_at=format_ts(judged.first_response_due),
        resolution_due_at=format_ts(judged.resolution_due),
        first_responded_at=clock.first_responded_at,
    )


def judge(*, terms: SlaTerms, status: str, created_at: str, clock: ClockFacts, now: datetime) -> Judgement:
    """The state and due times of `compute_sla`, without building the client-facing model."""
    created = parse_ts(created_at)
    finished = status in FINISHED_STATUSES
    # A finished ticket is judged at its resolution; one without a recorded time (never expected) as of now.
    as_of = parse_ts(clock.resolved_at) if finished and clock.resolved_at else now
    responded = parse_ts(clock.first_responded_at) if clock.first_responded_at else None
    first_due = created + terms.first_response
    resolution_due = created + terms.resolution + paused(clock, as_of)
    due_soon = _due_soon(resolution_due, terms.resolution, now) or (
        responded is None and _due_soon(first_due, terms.first_response, now)
    )
    state = _state(
        missed=(responded or as_of) > first_due or as_of > resolution_due,
        finished=finished,
        waiting=status == "waiting",
        due_soon=due_soon,
    )
    return Judgement(state=state, first_response_due=first_due, resolution_due=resolution_due)


def _state(*, missed: bool, finished: bool, waiting: bool, due_soon: bool) -> SlaState:
    if missed:
        return "breached"
    if finished:
        return "met"
    if waiting:
        return "paused"
    return "due_soon" if due_soon else "on_track"


def _due_soon(due: datetime, target: timedelta, now: datetime) -> bool:
    return (due - now) * DUE_SOON_PARTS <= target


def paused(clock: ClockFacts, as_of: datetime) -> timedelta:
    """Time spent waiting up to `as_of`: the finished waits plus the one in progress."""
    total = timedelta(seconds=max(clock.paused_seconds, 0))
    if clock.waiting_since:
        total += max(as_of - parse_ts(clock.waiting_since), timedelta(0))
    return total


def describe(sla: Sla) -> str:
    """The SLA in one line of our own fields, for prompts and exports."""
    if sla.first_responded_at is not None:
        reply = f"first public reply at {sla.first_responded_at} (due {sla.first_response_due_at})"
    else:
        reply = f"no public reply yet, due {sla.first_response_due_at}"
    return f"{sla.state}; {reply}; resolution due {sla.resolution_due_at}"
