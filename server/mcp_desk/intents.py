"""Intent records that ride in a write's own transaction: one fsync per acknowledged write.

With `power` durability a state-changing call writes a `tool_invocation` audit record before it runs,
and is answered only once that record survives a power loss. Where the storage can (SQLite), the
record does not wait for an fsync of the audit file: the `Audit` guard appends it to the file (which
survives a crash of the process at once) and sets `current`; the storage inserts it into its
`audit_journal` table inside the transaction that makes the change, so the change's own commit (one
fsync) makes both durable, and marks it `committed`. A call whose change commits nothing (a refusal,
a no-op edit) falls back to an fsync of the audit file before its answer.

The audit log deletes journal rows once the file is fsynced past them, and after a power loss that
cost the file its last records, appends the journaled intents it lost again on the next start
(`JsonlAuditLog.recover`), marked with the `recovered_seq` they first had.

A leaf module: storage and the audit guard both use it and must not import each other.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(slots=True, eq=False)
class Intent:
    """One intent record waiting for the write that carries it: its chain, seq in it, and JSON."""

    chain: str
    seq: int
    record: str
    committed: bool = False


# The intent of the call running in this task (and the tasks it starts); None outside a journaled write.
current: ContextVar[Intent | None] = ContextVar("mcp_desk_intent", default=None)


@runtime_checkable
class IntentJournal(Protocol):
    """A storage that commits intent records with its writes (`current`), and gives them back."""

    async def journaled_intents(self, chain: str) -> list[tuple[int, str]]:
        """The intents of `chain` still kept, as (seq, record JSON), oldest first."""
        ...

    async def forget_intents(self, chain: str, upto: int) -> None:
        """Delete the intents of `chain` up to seq `upto` (the audit file holds them durably)."""
        ...
