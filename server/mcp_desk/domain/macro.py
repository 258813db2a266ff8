"""Macros: a named, canned ticket action (a reply from a safe template plus field changes) applied in one step.

A reply template is plain text with `{field}` placeholders for a fixed set of ticket fields; `{{` and `}}`
are literal braces. It is parsed once, when the policy loads, so an unknown field or a stray brace is a
configuration error rather than a surprise at apply time. There is no attribute access, indexing, conversion
or format spec: rendering substitutes values once and never re-reads what it substituted, so a ticket title
that itself contains `{id}` stays literal text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mcp_desk.domain.models import Priority, TicketStatus, Visibility

MACRO_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,47}$")
TEMPLATE_FIELDS: tuple[str, ...] = ("id", "title", "requester", "assignee", "priority", "status")
MAX_TEMPLATE_CHARS = 4000
MAX_TEMPLATE_PLACEHOLDERS = 20

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


@dataclass(frozen=True, slots=True)
class Placeholder:
    """A `{field}` in a reply template."""

    field: str


def _placeholder(inner: str, at: int) -> Placeholder:
    if inner in TEMPLATE_FIELDS:
        return Placeholder(inner)
    fields = ", ".join("{" + name + "}" for name in TEMPLATE_FIELDS)
    if re.fullmatch(r"[a-z_]+", inner):
        raise ValueError(f"unknown field {{{inner}}} at character {at} (fields: {fields})")
    raise ValueError(
        f"placeholder {{{inner[:40]}}} at character {at} is not a plain field name: no attribute access, indexing, "
        f"conversions or format specs (fields: {fields}; write {{{{ and }}}} for literal braces)"
    )


@dataclass(frozen=True, kw_only=True)
class ReplyTemplate:
    """A parsed reply: literal text and placeholders, in order."""

    text: str
    parts: tuple[str | Placeholder, ...]

    @classmethod
    def parse(cls, text: str) -> ReplyTemplate:
        """Parse `text`; ValueError naming the character position of the first problem."""
        if not text.strip():
            raise ValueError("the reply is empty; leave `reply` out for a macro that posts no comment")
        if len(text) > MAX_TEMPLATE_CHARS:
            raise ValueError(f"the reply is {len(text)} characters; the most is {MAX_TEMPLATE_CHARS}")
        parts: list[str | Placeholder] = []
        end = 0
        for match in _TOKEN.finditer(text):
            parts.append(text[end : match.start()])
            token, end = match.group(0), match.end()
            if token in ("{{", "}}"):
                parts.append(token[0])
            elif match.group(1) is not None:
                parts.append(_placeholder(match.group(1), match.start() + 1))
            else:
                raise ValueError(
                    f"unmatched {token!r} at character {match.start() + 1}; write {token * 2} for a literal"
                )
        parts.append(text[end:])
        template = cls(text=text, parts=tuple(part for part in parts if part != ""))
        if len(template.fields) > MAX_TEMPLATE_PLACEHOLDERS:
            raise ValueError(
                f"the reply has {len(template.fields)} placeholders; the most is {MAX_TEMPLATE_PLACEHOLDERS}"
            )
        return template

    @property
    def fields(self) -> tuple[str, ...]:
        """The fields the template uses, in order of appearance (repeats included)."""
        return tuple(part.field for part in self.parts if isinstance(part, Placeholder))

    def render(self, values: Mapping[str, str]) -> str:
        """The text with each placeholder replaced by its value; every used field must be in `values`."""
        return "".join(part if isinstance(part, str) else values[part.field] for part in self.parts)


@dataclass(frozen=True, kw_only=True)
class Macro:
    """A macro as the policy defines it; None (or no tags) leaves a field as it is."""

    name: str
    description: str
    reply: ReplyTemplate | None = None
    visibility: Visibility = "internal"
    status: TicketStatus | None = None
    priority: Priority | None = None
    add_tags: tuple[str, ...] = ()
    assignee: str | None = None  # "" unassigns

    def changes(self) -> list[str]:
        """What applying it does, one short phrase each, in a fixed order."""
        done = [f"status → {self.status}"] if self.status is not None else []
        if self.priority is not None:
            done.append(f"priority → {self.priority}")
        if self.add_tags:
            done.append(f"adds tags {', '.join(self.add_tags)}")
        if self.assignee is not None:
            done.append(f"assigns to {self.assignee}" if self.assignee else "unassigns")
        if self.reply is not None:
            done.append("posts a public reply" if self.visibility == "public" else "posts an internal reply")
        return done


def merge_tags(current: Sequence[str], added: Sequence[str]) -> list[str]:
    """The ticket's tags followed by the added ones it did not have yet (order kept, no duplicates)."""
    merged = list(current)
    merged += [tag for tag in dict.fromkeys(added) if tag not in merged]
    return merged
