"""What every tool receives first: the caller, the stores and the few services tools use."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from pydantic import Field

from mcp_desk.domain.macro import Macro
from mcp_desk.domain.principal import Principal
from mcp_desk.policy.paths import DEFAULT_BLOCKED
from mcp_desk.policy.permissions import note_read_scope
from mcp_desk.policy.pipeline import NO_CLIENT, CallState, ClientChannel
from mcp_desk.policy.validation import InputLimits
from mcp_desk.sandbox.runner import CommandRunner
from mcp_desk.storage.base import NoteScope, Storage
from mcp_desk.tools.usage import DailyBudget, Limiter


async def _no_change(uri: str) -> None:
    return None


def _identity(text: str) -> str:
    return text


@dataclass(frozen=True, kw_only=True)
class ToolEnv:
    """Per-call context for tools; hidden from the model (it is not an argument)."""

    principal: Principal
    storage: Storage
    docs_root: Path
    export_root: Path
    runner: CommandRunner
    limiter: Limiter
    budget: DailyBudget
    resource_changed: Callable[[str], Awaitable[None]] = _no_change
    redact: Callable[[str], str] = _identity
    docs_blocked: tuple[str, ...] = DEFAULT_BLOCKED
    export_blocked: tuple[str, ...] = DEFAULT_BLOCKED
    client: ClientChannel = NO_CLIENT
    state: CallState = field(default_factory=CallState)  # this call's typed facts (the endpoint passes its own)
    confirmation_required: frozenset[str] = frozenset()  # tools the policy refuses when the client cannot confirm
    macros: Mapping[str, Macro] = field(default_factory=dict)  # the policy's [macros.*], by name
    limits: InputLimits = field(default_factory=InputLimits)  # the configured input limits

    @property
    def note_scope(self) -> NoteScope:
        """Which notes the caller may read, as the permissions policy decides."""
        return note_read_scope(self.principal)


# Argument types shared by the tools. Limits are enforced by the validate guard (configurable);
# descriptions tell the model what is accepted.
Title = Annotated[str, Field(description="Short title (at most 200 characters by default).")]
Body = Annotated[str, Field(description="Markdown text (at most 64 KiB by default).")]
Tags = Annotated[list[str], Field(description="Labels (at most 20, each at most 40 characters by default).")]
Cursor = Annotated[
    str | None, Field(description="Pass back the next_cursor of the previous page; omit for the first page.")
]
Limit = Annotated[int, Field(ge=1, le=100, description="Items per page (1-100).")]
Query = Annotated[
    str, Field(description="Words to search for; all must match. End a word with * to match it as a prefix (print*).")
]
IdempotencyKey = Annotated[
    str | None,
    Field(
        min_length=1,
        max_length=100,
        description="Optional client key: repeating a create with the same key returns the first result.",
    ),
]
ExpectedVersion = Annotated[
    int | None, Field(ge=1, description="Optional: refuse the change unless the object is still at this version.")
]
NoteId = Annotated[
    str, Field(min_length=1, max_length=64, description="A note id as returned by create_note or list_notes.")
]
TicketId = Annotated[
    str, Field(min_length=1, max_length=64, description="A ticket id as returned by create_ticket or list_tickets.")
]
