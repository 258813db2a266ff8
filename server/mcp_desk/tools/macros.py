"""Macro tools: the policy's canned ticket actions, listed for the model and applied in one step.

`apply_macro` reads the ticket, works out the changes (tags merged, reply rendered from the ticket as it will
be), and writes them with ONE storage `update_ticket` call pinned to the version it read: the fields, the
comment and one `macro` history entry commit together or not at all. When the caller gave no
`expected_version` and someone else changed the ticket in between, it reads again and retries, so a reply is
never rendered from stale values.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from mcp_desk.domain.macro import Macro, ReplyTemplate, merge_tags
from mcp_desk.domain.models import Model, Priority, Ticket, TicketStatus, Visibility, check_transition
from mcp_desk.errors import Conflict, InvalidInput, quote
from mcp_desk.policy.pipeline import READ_ONLY, ToolAnnotationsSpec, ToolSpec
from mcp_desk.storage.base import NewComment, TicketChanges
from mcp_desk.tools.env import ExpectedVersion, TicketId, ToolEnv

ATTEMPTS = 3  # reads and pinned writes before a busy ticket's version conflict is handed to the caller

MacroName = Annotated[
    str, Field(min_length=1, max_length=64, description="The macro's name, as list_macros shows it (its id).")
]


class MacroInfo(Model):
    """A macro as list_macros shows it: what it is for and exactly what applying it changes."""

    id: str = Field(description="The macro's name; pass it to apply_macro as `macro`.")
    description: str
    changes: list[str] = Field(description="What applying it does, in words.")
    status: TicketStatus | None = Field(description="The status it moves the ticket to; null leaves it.")
    priority: Priority | None = Field(description="The priority it sets; null leaves it.")
    add_tags: list[str] = Field(description="Tags it adds (tags the ticket already has stay).")
    assignee: str | None = Field(description='Who it assigns the ticket to ("" unassigns); null leaves it.')
    reply: str | None = Field(
        description="The comment it posts, as a template: {id}, {title}, {requester}, {assignee}, {priority} and "
        "{status} become the ticket's values after the changes. Null: no comment."
    )
    reply_visibility: Visibility | None = Field(description="public (the requester sees it) or internal.")

    @classmethod
    def of(cls, macro: Macro) -> MacroInfo:
        """The listing of one macro."""
        return cls(
            id=macro.name,
            description=macro.description,
            changes=macro.changes(),
            status=macro.status,
            priority=macro.priority,
            add_tags=list(macro.add_tags),
            assignee=macro.assignee,
            reply=None if macro.reply is None else macro.reply.text,
            reply_visibility=None if macro.reply is None else macro.visibility,
        )


class MacroList(Model):
    """Every macro the policy defines, by name."""

    items: list[MacroInfo]


async def list_macros(env: ToolEnv) -> MacroList:
    """List the desk's macros: canned ticket actions (a reply plus status, priority, tag and assignee changes).

    Apply one with apply_macro; every change it makes is listed here.
    """
    return MacroList(items=[MacroInfo.of(env.macros[name]) for name in sorted(env.macros)])


async def apply_macro(
    env: ToolEnv, ticket_id: TicketId, macro: MacroName, expected_version: ExpectedVersion = None
) -> Ticket:
    """Apply one of the desk's macros (list_macros shows each and what it changes) to a ticket, all or nothing.

    Its field changes, its reply (a comment, public or internal) and one history entry are written together.
    A status change must be allowed from the ticket's current status; when anything is refused (the status move,
    a stale expected_version, too many tags, a field the reply needs but the ticket lacks), nothing changes.
    A macro without a reply whose changes are already in place changes nothing (same version, no history entry).
    """
    chosen = _macro(env, macro)
    retries = 0 if expected_version is not None else ATTEMPTS - 1
    while True:
        ticket = await env.storage.get_ticket(ticket_id)
        try:
            updated = await _write(env, chosen, ticket, expected_version or ticket.version)
        except Conflict:
            if retries == 0:
                raise
            retries -= 1  # changed since it was read: read it again and plan against what is there now
            continue
        await env.resource_changed(f"ticket://{updated.id}")
        return updated


async def _write(env: ToolEnv, macro: Macro, ticket: Ticket, version: int) -> Ticket:
    """One storage call: the changes, the reply and the `macro` history entry, if the ticket is still at `version`."""
    changes, reply = _plan(env, macro, ticket)
    return await env.storage.update_ticket(
        ticket.id,
        changes,
        actor=env.principal.id,
        expected_version=version,
        comment=reply,
        history_kind="macro",
        detail={"macro": macro.name},
    )


def _macro(env: ToolEnv, name: str) -> Macro:
    chosen = env.macros.get(name)
    if chosen is not None:
        return chosen
    if not env.macros:
        raise InvalidInput(f"no macro {quote(name)!r}: the policy defines no macros")
    raise InvalidInput(f"no macro {quote(name)!r}; the macros are: {', '.join(sorted(env.macros))} (see list_macros)")


def _plan(env: ToolEnv, macro: Macro, ticket: Ticket) -> tuple[TicketChanges, NewComment | None]:
    """The changes and the rendered reply, or an error when the ticket cannot take them as it is."""
    status = None if macro.status == ticket.status else macro.status  # already there: nothing to move
    if status is not None:
        check_transition(ticket.id, ticket.status, status)
    changes = TicketChanges(
        status=status, priority=macro.priority, assignee=macro.assignee, tags=_tags(env, macro, ticket)
    )
    if macro.reply is None:
        return changes, None
    body = _render(env, macro, macro.reply, ticket)
    return changes, NewComment(author=env.principal.id, body=body, visibility=macro.visibility)


def _tags(env: ToolEnv, macro: Macro, ticket: Ticket) -> list[str] | None:
    merged = merge_tags(ticket.tags, macro.add_tags)
    if merged == ticket.tags:
        return None
    if len(merged) > env.limits.tags:
        added = merged[len(ticket.tags) :]
        raise InvalidInput(
            f"ticket {ticket.id} has {len(ticket.tags)} tags and macro {macro.name} adds {len(added)} "
            f"({', '.join(added)}); the most is {env.limits.tags} (MCP_DESK_MAX_TAGS). "
            "Remove tags with update_ticket, then apply the macro again"
        )
    return merged


def _render(env: ToolEnv, macro: Macro, reply: ReplyTemplate, ticket: Ticket) -> str:
    """The reply with the ticket's values as they will be after the macro's changes."""
    assignee = ticket.assignee if macro.assignee is None else (macro.assignee or None)
    values = {
        "id": ticket.id,
        "title": ticket.title,
        "requester": ticket.requester,
        "assignee": assignee,
        "priority": macro.priority or ticket.priority,
        "status": macro.status or ticket.status,
    }
    for field in reply.fields:
        if values[field] is None:
            raise InvalidInput(_missing(macro, ticket.id, field))
    body = reply.render({name: value for name, value in values.items() if value is not None})
    size = len(body.encode("utf-8"))
    if size > env.limits.comment_bytes:
        raise InvalidInput(
            f"macro {macro.name}'s reply for ticket {ticket.id} is {size} bytes; the limit is "
            f"{env.limits.comment_bytes} bytes (MCP_DESK_MAX_COMMENT_BYTES)"
        )
    return body


def _missing(macro: Macro, ticket_id: str, field: str) -> str:
    fix = "set it with update_ticket" if field == "requester" else "assign it with assign_ticket"
    return f"macro {macro.name}'s reply uses {{{field}}}, but ticket {ticket_id} has no {field}; {fix}, then apply it"


TOOLS = [
    ToolSpec(name="list_macros", fn=list_macros, scope="tickets:read", annotations=READ_ONLY),
    ToolSpec(
        name="apply_macro", fn=apply_macro, scope="tickets:write", annotations=ToolAnnotationsSpec(destructive=True)
    ),
]
