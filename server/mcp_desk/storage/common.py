"""What every backend does the same way: ids, fingerprints, version and idempotency rules."""

from __future__ import annotations

import hashlib
import json
import secrets

from mcp_desk.errors import Conflict

UNAVAILABLE = (
    "nothing was saved: the database cannot be written right now (disk full or read-only storage); "
    "reads still work, try the write again later"
)


def new_id(prefix: str) -> str:
    """An unguessable, URI-safe identifier."""
    return f"{prefix}_{secrets.token_hex(8)}"


def fingerprint(*parts: object) -> str:
    """A stable digest of some values (idempotency arguments, a search query)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def check_version(kind: str, object_id: str, current: int, expected: int | None) -> None:
    """Raise Conflict when the caller's `expected_version` is not the stored one."""
    if expected is not None and expected != current:
        raise Conflict(
            f"{kind} {object_id} is at version {current}, not {expected}: it changed since you read it; "
            "fetch it again and retry with the new version"
        )


def check_idempotent_reuse(stored_fingerprint: str, fingerprint_now: str) -> None:
    """Raise Conflict when an idempotency key comes back with different arguments."""
    if stored_fingerprint != fingerprint_now:
        raise Conflict("idempotency_key was already used with different arguments; use a new key for a new object")
