"""The PostgreSQL backend (asyncpg): a bounded pool, tsvector + GIN search, migrations under an advisory lock."""

from mcp_desk.storage.postgres.repository import PostgresStorage

__all__ = ["PostgresStorage"]
