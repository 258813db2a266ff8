"""The SQLite backend: one file, WAL, FTS5 search, migrations applied at open."""

from mcp_desk.storage.sqlite.repository import SqliteStorage

__all__ = ["SqliteStorage"]
