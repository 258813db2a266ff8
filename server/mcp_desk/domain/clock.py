"""Time as the desk reads it: an injectable clock of aware UTC datetimes and the stored text format."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time, aware and in UTC (the default clock)."""
    return datetime.now(UTC)


def format_ts(dt: datetime) -> str:
    """A stored timestamp: ISO 8601 in UTC with microseconds and a trailing Z, sortable as text."""
    return dt.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_ts(text: str) -> datetime:
    """The aware UTC datetime of a timestamp written by `format_ts`."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
