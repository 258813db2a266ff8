"""The support desk's objects as clients see them, and the ticket status machine."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from mcp_desk.errors import Conflict

TicketStatus = Literal["open", "in_progress", "waiting", "resolved", "closed"]
Priority = Literal["low", "normal", "high", "urgent"]
Visibility = Literal["internal", "public"]
HistoryKind = Literal["created", "updated", "status", "assigned", "commented", "linked", "macro", "exported"]

STATUSES: tuple[TicketStatus, ...] = ("open", "in_progress", "waiting", "resolved", "closed")
PRIORITIES: tuple[Priority, ...] = ("low", "normal", "high", "urgent")

TRANSITIONS: dict[str, tuple[TicketStatus, ...]] = {
    "open": ("in_progress", "waiting", "resolved", "closed"),
    "in_progress": ("waiting", "resolved", "open"),
    "waiting": ("in_progress", "resolved"),
    "resolved": ("closed", "open"),
    "closed": ("open",),
}


def check_transition(ticket_id: str, current: str, target: str) -> None:
    """Refuse a status change the machine does not allow, naming the allowed next statuses."""
    allowed = TRANSITIONS[current]
    if target not in allowed:
        raise Conflict(f"ticket {ticket_id} is {current}; allowed next: {', '.join(allowed)}")


class Model(BaseModel):
    """Base for every client-facing object: strict, immutable."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Note(Model):
    """A private note owned by its creator."""

    id: str
    title: str
    body: str
    tags: list[str]
    owner: str
    version: int
    created_at: str
    updated_at: str


class NoteSummary(Model):
    """A note in a list or search result."""

    id: str
    title: str
    tags: list[str]
    version: int
    updated_at: str
    snippet: str | None = None


class Comment(Model):
    """A comment on a ticket: `internal` (for colleagues) or `public` (a reply to the requester)."""

    id: str
    ticket_id: str
    author: str
    body: str
    created_at: str
    visibility: Visibility = "internal"


class TicketClock(Model):
    """The facts a ticket's SLA is computed from, kept by storage in the same transaction as each change."""

    first_responded_at: str | None = Field(
        default=None, description="First public comment by anyone other than the requester."
    )
    waiting_since: str | None = Field(default=None, description="When the current wait began (status waiting).")
    paused_seconds: int = Field(default=0, description="Total time spent waiting before the current wait.")
    resolved_at: str | None = Field(default=None, description="When it was resolved or closed; cleared on reopen.")


class Ticket(Model):
    """A ticket in the shared queue, with its oldest comments and linked notes."""

    id: str
    title: str
    description: str
    status: TicketStatus
    priority: Priority
    assignee: str | None
    tags: list[str]
    created_by: str
    version: int
    created_at: str
    updated_at: str
    requester: str | None = None
    comments: list[Comment] = Field(default_factory=list)
    comment_count: int = 0
    linked_notes: list[str] = Field(default_factory=list)
    clock: TicketClock = Field(default_factory=TicketClock)


class TicketSummary(Model):
    """A ticket in a list or search result."""

    id: str
    title: str
    status: TicketStatus
    priority: Priority
    assignee: str | None
    version: int
    updated_at: str
    snippet: str | None = None


FieldValue = str | list[str] | None


class FieldChange(Model):
    """One field's value before and after a change (None: it had or has no value)."""

    old: FieldValue
    new: FieldValue


class HistoryEntry(Model):
    """One recorded change to a ticket: who, when, what kind, and the fields it changed."""

    id: str
    ticket_id: str
    at: str
    actor: str
    kind: HistoryKind
    changes: dict[str, FieldChange] = Field(default_factory=dict)
    detail: dict[str, Any] = Field(default_factory=dict)


class DocSummary(Model):
    """A knowledge-base document in a search result; `id` is its path relative to the docs root."""

    id: str
    title: str
    snippet: str | None = None


class Doc(Model):
    """A knowledge-base document's full text."""

    id: str
    title: str
    content: str
    bytes: int


T = TypeVar("T", bound=Model)


class Page(Model, Generic[T]):
    """One page of a list or search; `next_cursor` is null on the last page."""

    items: list[T]
    next_cursor: str | None = None
