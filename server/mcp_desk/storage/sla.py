"""SLA in storage, the same for every backend: tickets judged in Python, and the same rules as one SQL expression.

Results carry the state `domain/sla.py` computes from a row; `list_tickets(sla_state=...)` and the gauge's
counts filter and group in SQL with `state_sql`, which follows those rules step by step on whole
microseconds since the epoch, so both agree to the microsecond. Each backend supplies only `micros`:
SQL turning one stored timestamp column into that integer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mcp_desk.domain.clock import Clock
from mcp_desk.domain.models import Priority, SlaState, Ticket
from mcp_desk.domain.sla import DUE_SOON_PARTS, FINISHED_STATUSES, SlaTerms, compute_sla, judge
from mcp_desk.storage.mapping import Row

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
# The states a status allows: a cheap condition on an indexed column ahead of the expression.
STATUSES_FOR_STATE: Mapping[str, tuple[str, ...]] = {
    "met": ("resolved", "closed"),
    "paused": ("waiting",),
    "due_soon": ("open", "in_progress"),
    "on_track": ("open", "in_progress"),
}
# The SQL name of the current time in `state_sql`: a one-row derived table joined to `tickets`.
NOW = "sla_clock.now_us"


@dataclass(frozen=True, kw_only=True, slots=True)
class RowClock:
    """A tickets row's SLA clock facts, read without building a model (list items are judged by the hundred)."""

    first_responded_at: str | None
    waiting_since: str | None
    paused_seconds: int
    resolved_at: str | None


@dataclass(frozen=True, kw_only=True)
class SlaJudge:
    """The SLA targets by priority and the clock a backend judges tickets by."""

    terms: Mapping[Priority, SlaTerms]
    clock: Clock

    def ticket(self, ticket: Ticket) -> Ticket:
        """The ticket with its `sla` as of now."""
        sla = compute_sla(
            terms=self.terms[ticket.priority],
            status=ticket.status,
            created_at=ticket.created_at,
            clock=ticket.clock,
            now=self.clock(),
        )
        return ticket.model_copy(update={"sla": sla})

    def state(self, row: Row, now: datetime) -> SlaState:
        """A tickets row's SLA state at `now`, for its list or search item."""
        facts = RowClock(
            first_responded_at=row["first_responded_at"],
            waiting_since=row["waiting_since"],
            paused_seconds=row["paused_seconds"],
            resolved_at=row["resolved_at"],
        )
        terms = self.terms[row["priority"]]
        return judge(terms=terms, status=row["status"], created_at=row["created_at"], clock=facts, now=now).state


def micros_of(moment: datetime) -> int:
    """Whole microseconds since the epoch, the unit of `state_sql`."""
    return (moment - EPOCH) // MICROSECOND


def state_sql(terms: Mapping[Priority, SlaTerms], micros: Callable[[str], str]) -> str:
    """SQL for a tickets row's SLA state at `sla_clock.now_us` (see `clock_table`); the rules of `domain/sla.py`."""
    created = micros("created_at")
    first, resolution = _by_priority(terms, "first_response"), _by_priority(terms, "resolution")
    finished = f"status IN ({', '.join(repr(s) for s in sorted(FINISHED_STATUSES))})"
    as_of = f"(CASE WHEN {finished} AND resolved_at IS NOT NULL THEN {micros('resolved_at')} ELSE {NOW} END)"
    waited = f"({as_of} - {micros('waiting_since')})"
    wait = f"(CASE WHEN waiting_since IS NOT NULL AND {waited} > 0 THEN {waited} ELSE 0 END)"
    first_due = f"({created} + {first})"
    resolution_due = f"({created} + {resolution} + paused_seconds * CAST(1000000 AS BIGINT) + {wait})"
    missed = f"COALESCE({micros('first_responded_at')}, {as_of}) > {first_due} OR {as_of} > {resolution_due}"
    due_soon = (
        f"({resolution_due} - {NOW}) * {DUE_SOON_PARTS} <= {resolution}"
        f" OR (first_responded_at IS NULL AND ({first_due} - {NOW}) * {DUE_SOON_PARTS} <= {first})"
    )
    return (
        f"(CASE WHEN {missed} THEN 'breached' WHEN {finished} THEN 'met' WHEN status = 'waiting' THEN 'paused'"
        f" WHEN {due_soon} THEN 'due_soon' ELSE 'on_track' END)"
    )


def clock_table(placeholder: str) -> str:
    """The derived table `state_sql` reads the current time from; `placeholder` binds `micros_of(now)`."""
    return f"(SELECT {placeholder} AS now_us) AS sla_clock"


def _by_priority(terms: Mapping[Priority, SlaTerms], target: str) -> str:
    """A CASE over `priority` giving one target in microseconds (integers from the validated policy)."""
    whens = " ".join(
        f"WHEN '{priority}' THEN {getattr(t, target) // MICROSECOND}" for priority, t in sorted(terms.items())
    )
    return f"(CASE priority {whens} END)"


def state_clauses(state: str, expression: str, placeholder: str) -> list[str]:
    """WHERE clauses keeping tickets in `state`: the statuses it allows, then `expression` = `placeholder`."""
    allowed = STATUSES_FOR_STATE.get(state)
    clauses = [] if allowed is None else [f"status IN ({', '.join(repr(s) for s in allowed)})"]
    return [*clauses, f"{expression} = {placeholder}"]


def counts_sql(expression: str, clock_placeholder: str) -> str:
    """Open tickets (not resolved or closed) counted by priority and SLA state, for the gauge."""
    return (
        f"SELECT priority, {expression} AS sla_state, count(*) AS n FROM tickets, {clock_table(clock_placeholder)}"  # noqa: S608  # constant SQL; the time is bound
        f" WHERE status NOT IN ({', '.join(repr(s) for s in sorted(FINISHED_STATUSES))}) GROUP BY priority, sla_state"
    )
