"""Who is calling: an identity, its role and the scopes that role grants."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Scope = Literal[
    "notes:read",
    "notes:write",
    "notes:delete",
    "notes:read_all",
    "notes:write_all",
    "tickets:read",
    "tickets:write",
    "tickets:delete",
    "docs:read",
    "exports:write",
    "diagnostics:run",
]
ALL_SCOPES: frozenset[str] = frozenset(Scope.__args__)  # type: ignore[attr-defined]  # Literal exposes __args__ at runtime


@dataclass(frozen=True, kw_only=True, slots=True)
class Principal:
    """An authenticated caller. `id` is stable (stdio name, key principal, or OAuth issuer+subject)."""

    id: str
    role: str
    scopes: frozenset[str]
    transport: Literal["stdio", "http", "memory"] = "stdio"

    def has(self, scope: str) -> bool:
        """True when the principal holds `scope`."""
        return scope in self.scopes
