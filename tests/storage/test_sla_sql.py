"""The SQL SLA expression against the Python rules, on thousands of generated tickets, on both backends."""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from mcp_desk.domain.clock import format_ts
from mcp_desk.domain.models import PRIORITIES, SLA_STATES, STATUSES
from mcp_desk.domain.sla import DEFAULT_TERMS, judge
from mcp_desk.storage.postgres import rows as postgres_rows
from mcp_desk.storage.sla import RowClock, clock_table, micros_of, state_sql
from mcp_desk.storage.sqlite import rows as sqlite_rows
from tests.storage.helpers import fresh_database

pytestmark = pytest.mark.anyio

BASE = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
COLUMNS = (
    "id",
    "priority",
    "status",
    "created_at",
    "first_responded_at",
    "waiting_since",
    "paused_seconds",
    "resolved_at",
)
MOMENTS = 300
MICROSECOND, ZERO = timedelta(microseconds=1), timedelta(0)
SEED = 17
INSERT = "INSERT INTO tickets VALUES (?, ?, ?, ?, ?, ?, ?, ?)"


def _offset(rng: random.Random, most_minutes: int) -> timedelta:
    return timedelta(microseconds=rng.randrange(most_minutes * 60 * 1_000_000))


def _near_a_due_time(rng: random.Random, ticket: dict[str, Any]) -> datetime:
    """Within a microsecond of one of the ticket's due times or due-soon thresholds, or anywhere in the next weeks."""
    if rng.random() < 0.2:
        return BASE + _offset(rng, 40000)
    terms = DEFAULT_TERMS[ticket["priority"]]
    judged = judge(
        terms=terms, status=ticket["status"], created_at=ticket["created_at"], clock=_facts(ticket), now=BASE
    )
    point = rng.choice(
        [
            judged.first_response_due,
            judged.resolution_due,
            judged.first_response_due - terms.first_response / 5,
            judged.resolution_due - terms.resolution / 5,
        ]
    )
    return point + rng.choice([-MICROSECOND, ZERO, MICROSECOND])


def _on_the_edge(rng: random.Random, due: datetime, anywhere: datetime) -> str:
    """A timestamp a microsecond either side of `due`, on it, or (mostly) `anywhere`."""
    if rng.random() < 0.3:
        return format_ts(due + rng.choice([-MICROSECOND, ZERO, MICROSECOND]))
    return format_ts(anywhere)


def _facts(ticket: dict[str, Any]) -> RowClock:
    return RowClock(**{k: ticket[k] for k in ("first_responded_at", "waiting_since", "paused_seconds", "resolved_at")})


def generated_tickets(rng: random.Random, count: int) -> list[dict[str, Any]]:
    """Tickets in every status with clock facts as storage keeps them, plus some it never writes (odd on purpose)."""
    tickets = []
    for n in range(count):
        status, priority = rng.choice(STATUSES), rng.choice(PRIORITIES)
        terms, created = DEFAULT_TERMS[priority], BASE + _offset(rng, 20000)
        paused = rng.choice([0, 0, rng.randrange(1, 2_000_000)])
        waits = status == "waiting" or rng.random() < 0.05
        finished = status in ("resolved", "closed")
        replied = _on_the_edge(rng, created + terms.first_response, created + _offset(rng, 3000))
        resolution_due = created + terms.resolution + timedelta(seconds=paused)
        resolved = _on_the_edge(rng, resolution_due, created + _offset(rng, 20000))
        waiting_since = _on_the_edge(rng, resolution_due, created + _offset(rng, 5000))
        tickets.append(
            {
                "id": f"t{n}",
                "priority": priority,
                "status": status,
                "created_at": format_ts(created),
                "first_responded_at": replied if rng.random() < 0.5 else None,
                "waiting_since": waiting_since if waits else None,
                "paused_seconds": paused,
                "resolved_at": resolved if finished and rng.random() < 0.95 else None,
            }
        )
    return tickets


def python_states(tickets: list[dict[str, Any]], now: datetime) -> dict[str, str]:
    return {
        t["id"]: judge(
            terms=DEFAULT_TERMS[t["priority"]],
            status=t["status"],
            created_at=t["created_at"],
            clock=RowClock(
                **{k: t[k] for k in ("first_responded_at", "waiting_since", "paused_seconds", "resolved_at")}
            ),
            now=now,
        ).state
        for t in tickets
    }


def moments(rng: random.Random, tickets: list[dict[str, Any]]) -> list[datetime]:
    """Moments on the edges of tickets' thresholds, mostly of tickets still being worked (where states change)."""
    live = [t for t in tickets if t["status"] in ("open", "in_progress")]
    answered = [t for t in live if t["first_responded_at"] is not None]
    unanswered = [t for t in live if t["first_responded_at"] is None]
    return [_near_a_due_time(rng, rng.choice((tickets, answered, unanswered)[n % 3])) for n in range(MOMENTS)]


def test_sqlite_computes_the_same_state_as_python() -> None:
    rng = random.Random(SEED)  # noqa: S311  # reproducible test data, not secrets
    tickets = generated_tickets(rng, 1000)
    conn = sqlite3.connect(":memory:")
    conn.execute(f"CREATE TABLE tickets ({', '.join(COLUMNS)})")
    conn.executemany(INSERT, [tuple(t.values()) for t in tickets])
    sql = f"SELECT id, {state_sql(DEFAULT_TERMS, sqlite_rows.micros)} FROM tickets, {clock_table('?')}"  # noqa: S608  # constant SQL
    seen: set[str] = set()
    for now in moments(rng, tickets):
        expected = python_states(tickets, now)
        assert dict(conn.execute(sql, (micros_of(now),)).fetchall()) == expected, now
        seen |= set(expected.values())
    assert seen == set(SLA_STATES)


async def test_postgresql_computes_the_same_state_as_python() -> None:
    rng = random.Random(SEED)  # noqa: S311  # reproducible test data, not secrets
    tickets = generated_tickets(rng, 1000)
    async with fresh_database() as url:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(
                "CREATE TABLE tickets (id text, priority text, status text, created_at text, first_responded_at text,"
                " waiting_since text, paused_seconds integer, resolved_at text)"
            )
            await conn.copy_records_to_table("tickets", records=[tuple(t.values()) for t in tickets], columns=COLUMNS)
            state = state_sql(DEFAULT_TERMS, postgres_rows.micros)
            sql = f"SELECT id, {state} AS s FROM tickets, {clock_table('$1::bigint')}"  # noqa: S608  # constant SQL
            for now in moments(rng, tickets):
                found = {row["id"]: row["s"] for row in await conn.fetch(sql, micros_of(now))}
                assert found == python_states(tickets, now), now
        finally:
            await conn.close()
