"""The opaque cursor codec: round trips, and refuses forged, foreign and misshapen cursors."""

from __future__ import annotations

import base64
import json

import pytest

from mcp_desk.errors import InvalidInput
from mcp_desk.storage.cursor import decode_cursor, encode_cursor, invalid_cursor


def test_a_cursor_round_trips_its_values_and_is_url_safe_without_padding() -> None:
    cursor = encode_cursor(["notes", "2026-01-01T00:00:00.000000Z", 42])
    assert "=" not in cursor and "+" not in cursor and "/" not in cursor
    assert decode_cursor(cursor, "notes", 2) == ["2026-01-01T00:00:00.000000Z", 42]


def test_no_cursor_means_the_first_page() -> None:
    assert decode_cursor(None, "notes", 2) is None


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!!",
        encode_cursor(["tickets", "a", 1]),  # another listing's
        encode_cursor(["notes", "a"]),  # the wrong arity
        encode_cursor(["notes", "a", 1, 2]),
        base64.urlsafe_b64encode(json.dumps({"notes": 1}).encode()).decode(),  # not a list
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),  # not UTF-8
    ],
)
def test_a_forged_foreign_or_misshapen_cursor_is_refused(cursor: str) -> None:
    with pytest.raises(InvalidInput, match="cursor is not valid for this listing"):
        decode_cursor(cursor, "notes", 2)


def test_the_invalid_cursor_error_says_how_to_recover() -> None:
    assert "omit it to start from the first page" in invalid_cursor().public
