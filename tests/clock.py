"""A clock tests move by hand, so time-dependent code is tested without sleeping."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta


@dataclass
class ManualClock:
    """Returns `now` when called; `advance` (or assigning `now`) moves it."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += seconds


@dataclass
class ManualUtcClock:
    """An aware UTC datetime clock for storage and the app; `advance` (or assigning `now`) moves it."""

    now: datetime = field(default_factory=lambda: datetime(2026, 1, 5, 9, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = 0, *, minutes: float = 0, hours: float = 0) -> None:
        """Move the clock forward."""
        self.now += timedelta(seconds=seconds, minutes=minutes, hours=hours)
