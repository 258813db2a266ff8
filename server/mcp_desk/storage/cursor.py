"""The opaque page cursor every backend hands out: clients pass back exactly what they received.

A cursor is URL-safe base64 of a compact JSON list `[kind, value, ...]`. `kind` names the listing
it belongs to, so a cursor from one listing (or a forged one) is refused by another; the arity
check refuses one of the right kind but the wrong shape.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from mcp_desk.errors import InvalidInput

_INVALID = "cursor is not valid for this listing; omit it to start from the first page"


def encode_cursor(payload: list[Any]) -> str:
    """Opaque cursor: clients pass back what they received."""
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, kind: str, arity: int) -> list[Any] | None:
    """The values of a cursor made by `encode_cursor` for this kind of listing (None for the first page).

    Raises InvalidInput for anything else: malformed, another listing's, or the wrong number of values.
    """
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
        if isinstance(payload, list) and len(payload) == arity + 1 and payload[0] == kind:
            return payload[1:]
    except (ValueError, UnicodeDecodeError):
        pass
    raise InvalidInput(_INVALID)


def invalid_cursor() -> InvalidInput:
    """The error for a cursor of the right kind and shape whose values make no sense."""
    return InvalidInput(_INVALID)
