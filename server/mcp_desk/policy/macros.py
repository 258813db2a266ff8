"""`[macros.NAME]` tables of the policy file: validation with messages naming the key, and `policy explain` lines.

A macro table holds a `description`, an optional `reply` (a template over the ticket's fields, see
domain/macro.py) posted with its `visibility`, and field changes: `status`, `priority`, `add_tags`,
`assignee` ("" unassigns). What a table can say alone is checked when the file loads; how its tags and reply
fit the configured input limits is checked at start-up, by `Policy.check(limits=...)`.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mcp_desk.domain.macro import TEMPLATE_FIELDS, Macro, ReplyTemplate
from mcp_desk.domain.models import Priority, TicketStatus, Visibility
from mcp_desk.policy.validation import InputLimits, has_control_chars

MAX_DESCRIPTION_CHARS = 200
MAX_ASSIGNEE_CHARS = 64


def _plain(what: str, text: str) -> str:
    if has_control_chars(text):
        raise ValueError(f"{what} contains control characters; use plain text (tabs and newlines are fine)")
    return text


class MacroRule(BaseModel):
    """One `[macros.NAME]` table as written."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    description: str = Field(min_length=1, max_length=MAX_DESCRIPTION_CHARS)
    reply: str | None = None
    visibility: Visibility | None = None
    status: TicketStatus | None = None
    priority: Priority | None = None
    add_tags: tuple[str, ...] = ()
    assignee: str | None = Field(default=None, max_length=MAX_ASSIGNEE_CHARS)

    @field_validator("description")
    @classmethod
    def _description(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the description is blank; say in a few words when to use the macro")
        return _plain("the description", value)

    @field_validator("reply")
    @classmethod
    def _reply(cls, value: str | None) -> str | None:
        if value is not None:
            ReplyTemplate.parse(_plain("the reply", value))
        return value

    @field_validator("add_tags")
    @classmethod
    def _tags(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for tag in value:
            if not tag.strip():
                raise ValueError("tags must not be empty or blank")
            _plain(f"tag {tag[:40]!r}", tag)
        repeated = sorted({tag for tag in value if value.count(tag) > 1})
        if repeated:
            raise ValueError(f"tag {repeated[0][:40]!r} is listed twice")
        return value

    @field_validator("assignee")
    @classmethod
    def _assignee(cls, value: str | None) -> str | None:
        if value is not None and value != value.strip():
            raise ValueError("the assignee has leading or trailing spaces; write the principal id exactly")
        return None if value is None else _plain("the assignee", value)

    @model_validator(mode="after")
    def _does_something(self) -> MacroRule:
        if self.visibility is not None and self.reply is None:
            raise ValueError("`visibility` applies to the reply; add a `reply` or remove `visibility`")
        changes = (self.reply, self.status, self.priority, self.assignee)
        if all(value is None for value in changes) and not self.add_tags:
            raise ValueError(
                "the macro does nothing: give a `reply` or at least one of status, priority, add_tags, assignee"
            )
        return self

    def to_macro(self, name: str) -> Macro:
        """The domain macro, its reply parsed (already known to parse)."""
        return Macro(
            name=name,
            description=self.description,
            reply=None if self.reply is None else ReplyTemplate.parse(self.reply),
            visibility=self.visibility or "internal",
            status=self.status,
            priority=self.priority,
            add_tags=self.add_tags,
            assignee=self.assignee,
        )


def check_macro_limits(macro: Macro, limits: InputLimits) -> tuple[str, str] | None:
    """The first way `macro` breaks the configured input limits, as (key, problem); None when it fits."""
    if len(macro.add_tags) > limits.tags:
        return (
            "add_tags",
            f"{len(macro.add_tags)} tags; the most a ticket may have is {limits.tags} (MCP_DESK_MAX_TAGS)",
        )
    for tag in macro.add_tags:
        if len(tag) > limits.tag_chars:
            return "add_tags", (
                f"tag {tag[:40]!r} is {len(tag)} characters; the limit is {limits.tag_chars} (MCP_DESK_MAX_TAG_CHARS)"
            )
    if macro.reply is not None and len(macro.reply.text.encode("utf-8")) > limits.comment_bytes:
        size = len(macro.reply.text.encode("utf-8"))
        return "reply", f"{size} bytes; a comment may be at most {limits.comment_bytes} (MCP_DESK_MAX_COMMENT_BYTES)"
    return None


def explain_macros(macros: Iterable[Macro]) -> list[str]:
    """`policy explain` lines: each macro, what it changes and which fields its reply uses."""
    listed = sorted(macros, key=lambda macro: macro.name)
    if not listed:
        return ["macros (apply_macro): (none)"]
    lines = [f"macros (apply_macro; reply fields: {', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)}):"]
    for macro in listed:
        lines.append(f"  {macro.name}: {macro.description}")
        lines.append(f"    does: {'; '.join(macro.changes())}")
        if macro.reply is not None:
            used = ", ".join("{" + f + "}" for f in dict.fromkeys(macro.reply.fields)) or "no fields"
            lines.append(f"    reply uses: {used}")
    return lines
