"""Value types of access decisions, shared by the policy that makes them and the storage that applies them."""

from __future__ import annotations

from dataclasses import dataclass

from mcp_desk.errors import NotFound


@dataclass(frozen=True, kw_only=True, slots=True)
class NoteScope:
    """Whose notes an operation may touch: `owner`'s own, or every owner's when `all_owners`.

    Only the permissions policy builds one for a caller (a read scope or a write scope); storage
    filters by it and never looks at scopes itself.
    """

    owner: str
    all_owners: bool = False


def note_not_found(note_id: str) -> NotFound:
    """The one NotFound for notes: a missing id and another owner's invisible note read exactly alike."""
    return NotFound(f"note {note_id} not found; list_notes or search_notes shows the notes you can use")
