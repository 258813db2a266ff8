"""A ticket's history as plain text lines, for prompts and exports (which put them inside a data block)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from mcp_desk.domain.models import FieldValue, HistoryEntry

VALUE_CHARS = 200  # a description edit holds up to 64 KiB twice; the ticket itself has the full text


def _value(value: FieldValue | object) -> str:
    """One old or new value, quoted so its bounds are plain, and shortened."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= VALUE_CHARS else text[:VALUE_CHARS] + "…"


def describe(entry: HistoryEntry) -> str:
    """One entry as a line: when, who, what kind, each changed field's old and new value, and the detail."""
    parts = [f"{name}: {_value(change.old)} -> {_value(change.new)}" for name, change in entry.changes.items()]
    parts += [f"{name}={_value(value)}" for name, value in entry.detail.items()]
    return f"{entry.at} {entry.actor} {entry.kind}" + (f" ({'; '.join(parts)})" if parts else "")


def render_history(entries: Sequence[HistoryEntry]) -> str:
    """Every entry as one line, oldest first."""
    return "\n".join(describe(entry) for entry in entries) or "no history recorded"
