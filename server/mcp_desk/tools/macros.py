"""Macro tools: the policy's canned ticket actions, listed for the model."""

from __future__ import annotations

from pydantic import Field

from mcp_desk.domain.macro import Macro, Visibility
from mcp_desk.domain.models import Model, Priority, TicketStatus
from mcp_desk.policy.pipeline import READ_ONLY, ToolSpec
from mcp_desk.tools.env import ToolEnv


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


TOOLS = [
    ToolSpec(name="list_macros", fn=list_macros, scope="tickets:read", annotations=READ_ONLY),
]
