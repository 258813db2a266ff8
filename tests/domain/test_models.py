"""The ticket status machine."""

from __future__ import annotations

import pytest

from mcp_desk.domain.models import STATUSES, TRANSITIONS, check_transition
from mcp_desk.errors import Conflict


@pytest.mark.parametrize(("current", "target"), [(c, t) for c in STATUSES for t in TRANSITIONS[c]])
def test_every_documented_transition_is_allowed(current: str, target: str) -> None:
    check_transition("t1", current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [(c, t) for c in STATUSES for t in STATUSES if t not in TRANSITIONS[c] and t != c],
)
def test_an_undocumented_transition_names_the_allowed_next_statuses(current: str, target: str) -> None:
    with pytest.raises(Conflict) as caught:
        check_transition("t1", current, target)
    assert caught.value.public == f"ticket t1 is {current}; allowed next: {', '.join(TRANSITIONS[current])}"


def test_the_machine_matches_the_design() -> None:
    assert TRANSITIONS == {
        "open": ("in_progress", "waiting", "resolved", "closed"),
        "in_progress": ("waiting", "resolved", "open"),
        "waiting": ("in_progress", "resolved"),
        "resolved": ("closed", "open"),
        "closed": ("open",),
    }
