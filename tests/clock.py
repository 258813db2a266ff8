"""A clock tests move by hand, so time-dependent code is tested without sleeping."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ManualClock:
    """Returns `now` when called; `advance` (or assigning `now`) moves it."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += seconds
