"""What a ticket change writes, the same for every backend: the ticket's new state and its one history entry.

A backend reads the ticket row (locked), checks the version, asks `plan_update` what the change means,
and writes the result in the same transaction: the new field values (the SLA clock facts included), the
optional comment and the history entry. A change that changes nothing writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any, cast, get_args

from mcp_desk.domain.clock import format_ts, parse_ts
from mcp_desk.domain.models import Comment, FieldChange, FieldValue, HistoryEntry, HistoryKind, check_transition
from mcp_desk.storage.base import NewComment, TicketChanges
from mcp_desk.storage.common import new_id
from mcp_desk.storage.mapping import Row

KINDS: frozenset[str] = frozenset(get_args(HistoryKind))
# The fields a `created` entry lists (the description can be 64 KiB; the ticket itself holds it).
CREATED_FIELDS = ("title", "status", "priority", "tags", "requester")
STOPPED = ("resolved", "closed")


@dataclass(frozen=True, kw_only=True, slots=True)
class TicketState:
    """A ticket's stored fields that changes touch, with its SLA clock facts."""

    title: str
    description: str
    priority: str
    tags: list[str]
    assignee: str | None
    status: str
    requester: str | None
    first_responded_at: str | None = None
    waiting_since: str | None = None
    paused_seconds: int = 0
    resolved_at: str | None = None

    @classmethod
    def of(cls, row: Row, *, tags: list[str]) -> TicketState:
        """The state held in a tickets row (tags decoded by the backend)."""
        values = {f.name: row[f.name] for f in fields(cls) if f.name != "tags"}
        return cls(tags=tags, **values)

    def columns(self) -> dict[str, Any]:
        """Column name to value, for the backend's UPDATE."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, kw_only=True, slots=True)
class Record:
    """One history entry about to be written."""

    id: str
    at: str
    actor: str
    kind: HistoryKind
    changes: dict[str, FieldChange] = field(default_factory=dict)
    detail: dict[str, object] = field(default_factory=dict)

    def entry(self, ticket_id: str) -> HistoryEntry:
        """The entry as it reads back once written."""
        return HistoryEntry(
            id=self.id,
            ticket_id=ticket_id,
            at=self.at,
            actor=self.actor,
            kind=self.kind,
            changes=self.changes,
            detail=json.loads(self.detail_json()),
        )

    def changes_json(self) -> str:
        """The changed fields as stored: {"field": {"old": ..., "new": ...}}."""
        return json.dumps({name: change.model_dump() for name, change in self.changes.items()})

    def detail_json(self) -> str:
        """The detail as stored."""
        return json.dumps(self.detail, default=str)


@dataclass(frozen=True, kw_only=True, slots=True)
class Plan:
    """What an accepted update writes: the new state, the comment (if any) and the history entry."""

    state: TicketState
    comment: Comment | None
    record: Record


def record(
    *,
    at: datetime,
    actor: str,
    kind: str,
    changes: Mapping[str, FieldChange] | None = None,
    detail: Mapping[str, object] | None = None,
) -> Record:
    """A history entry with a fresh id (`kind` must be one of KINDS)."""
    if kind not in KINDS:
        raise ValueError(f"unknown history kind {kind!r}")
    return Record(
        id=new_id("hist"),
        at=format_ts(at),
        actor=actor,
        kind=cast(HistoryKind, kind),
        changes=dict(changes or {}),
        detail=dict(detail or {}),
    )


def created(state: TicketState, *, at: datetime, actor: str) -> Record:
    """The `created` entry of a new ticket: its initial title, status, priority, tags and requester."""
    values = state.columns()
    changes = {
        name: FieldChange(old=None, new=values[name]) for name in CREATED_FIELDS if values[name] not in (None, [])
    }
    return record(at=at, actor=actor, kind="created", changes=changes)


def plan_update(
    ticket_id: str,
    before: TicketState,
    changes: TicketChanges,
    *,
    at: datetime,
    actor: str,
    comment: NewComment | None = None,
    history_kind: str | None = None,
    detail: Mapping[str, object] | None = None,
) -> Plan | None:
    """What `changes` (and an optional comment) do to a ticket; None when nothing would change.

    Raises Conflict for a status the machine does not allow next (before anything is written).
    """
    if changes.status is not None:  # a move to the current status is refused too: it is not a transition
        check_transition(ticket_id, before.status, changes.status)
    diff = _diff(before, changes)
    if not diff and comment is None:
        return None
    written = None if comment is None else _comment(ticket_id, comment, at=at)
    entry = record(at=at, actor=actor, kind=history_kind or _kind(diff), changes=diff, detail=detail)
    return _plan(before, diff, written, entry)


def plan_comment(ticket_id: str, before: TicketState, comment: NewComment, *, at: datetime) -> tuple[Plan, Comment]:
    """What a comment alone does to a ticket (its `commented` entry is by its author), and the comment written."""
    written = _comment(ticket_id, comment, at=at)
    return _plan(before, {}, written, record(at=at, actor=comment.author, kind="commented")), written


def _plan(before: TicketState, diff: Mapping[str, FieldChange], comment: Comment | None, entry: Record) -> Plan:
    """The new state after `diff` and `comment`; the entry names the comment (id and visibility, not its text)."""
    new_values: dict[str, Any] = {name: change.new for name, change in diff.items()}
    after = _clock(before, replace(before, **new_values), at=parse_ts(entry.at), comment=comment)
    if comment is not None:
        entry = replace(entry, detail=entry.detail | {"comment_id": comment.id, "visibility": comment.visibility})
    return Plan(state=after, comment=comment, record=entry)


def _comment(ticket_id: str, comment: NewComment, *, at: datetime) -> Comment:
    """The comment as it will be stored, with a fresh id."""
    return Comment(
        id=new_id("cmt"),
        ticket_id=ticket_id,
        author=comment.author,
        body=comment.body,
        created_at=format_ts(at),
        visibility=comment.visibility,
    )


def _diff(before: TicketState, changes: TicketChanges) -> dict[str, FieldChange]:
    """The fields `changes` really changes, with their old and new values."""
    wanted: dict[str, FieldValue] = {
        "title": changes.title,
        "description": changes.description,
        "priority": changes.priority,
        "tags": None if changes.tags is None else list(changes.tags),
        "status": changes.status,
        # An empty assignee or requester clears it.
        "assignee": None if changes.assignee is None else changes.assignee or None,
        "requester": None if changes.requester is None else changes.requester or None,
    }
    cleared = {name for name in ("assignee", "requester") if getattr(changes, name) == ""}
    found: dict[str, FieldChange] = {}
    for name, new in wanted.items():
        old = getattr(before, name)
        if (new is not None or name in cleared) and new != old:
            found[name] = FieldChange(old=old, new=new)
    return found


def _kind(diff: Mapping[str, FieldChange]) -> str:
    """The kind of an entry from what changed: a status move, an assignment, a comment alone, or an edit."""
    if "status" in diff:
        return "status"
    if diff.keys() == {"assignee"}:
        return "assigned"
    return "updated" if diff else "commented"


def _clock(before: TicketState, after: TicketState, *, at: datetime, comment: Comment | None) -> TicketState:
    """The SLA clock facts after a change: waits start and stop, resolution is stamped, a first reply counts."""
    ts = format_ts(at)
    facts: dict[str, Any] = {}
    if before.status != after.status:
        if before.status == "waiting" and before.waiting_since is not None:
            waited = int((at - parse_ts(before.waiting_since)).total_seconds())
            facts |= {"waiting_since": None, "paused_seconds": before.paused_seconds + max(0, waited)}
        if after.status == "waiting":
            facts["waiting_since"] = ts
        if after.status in STOPPED:
            facts["resolved_at"] = before.resolved_at or ts
        elif before.status in STOPPED:
            facts["resolved_at"] = None
    if (
        comment is not None
        and comment.visibility == "public"
        and comment.author != after.requester
        and before.first_responded_at is None
    ):
        facts["first_responded_at"] = ts
    return replace(after, **facts)
