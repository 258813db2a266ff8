"""An in-memory audit sink for tests: it satisfies `AuditSink` by structure."""

from __future__ import annotations

from mcp_desk.errors import StorageUnavailable
from mcp_desk.policy.audit import AuditEvent


class MemoryAuditSink:
    """An in-memory sink for tests; `fail` makes writes raise like a full disk, `fail_sync` its syncs."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []
        self.fail = False
        self.fail_sync = False

    async def append(self, event: AuditEvent) -> int:
        """Append and return its seq (1, 2, ...), or raise StorageUnavailable when `fail` is set."""
        if self.fail:
            raise StorageUnavailable("audit log unavailable")
        self.events.append(event)
        return len(self.events)

    async def sync(self) -> None:
        """Nothing to sync; raise StorageUnavailable when `fail_sync` is set, like a failing disk."""
        if self.fail_sync:
            raise StorageUnavailable("audit log unavailable")

    def synced(self) -> bool:
        """Nothing to sync unless `fail_sync` is set (a failing disk)."""
        return not self.fail_sync

    async def flush(self) -> None:
        """Nothing to flush."""

    async def close(self) -> None:
        """Nothing to close."""

    def writable(self) -> bool:
        """True unless `fail` is set."""
        return not self.fail
