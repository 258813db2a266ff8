"""Versioned PostgreSQL schema migrations, applied in order under an advisory lock.

Several replicas may start at once against one database: each takes the same transaction-scoped
advisory lock before it reads `schema_migrations`, so the first one migrates and the others, once
the lock is theirs, find the schema current. Everything happens in one transaction (PostgreSQL DDL
is transactional): a migration that fails leaves the schema as it was.
"""

from __future__ import annotations

from typing import Any

import structlog

log = structlog.get_logger()

# pg_advisory_xact_lock key: a fixed 64-bit number that names "mcp-desk schema migrations".
MIGRATION_LOCK = 0x6D63_7064_6573_6B31

MIGRATIONS: tuple[str, ...] = (
    # 1: notes, tickets, comments, links, idempotency keys, the docs index, and their tsvector + GIN search.
    """
    CREATE FUNCTION mcp_desk_words(text[]) RETURNS text
        LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN array_to_string($1, ' ');
    -- Words as SQLite's unicode61 tokenizer sees them: ASCII punctuation separates words everywhere, so
    -- `alice@example.com`, `/var/log`, `1.2.3` and `foo_bar` are searchable by their parts (PostgreSQL's
    -- parser alone would keep an e-mail address, a path or a version as one token). Locale-independent.
    CREATE FUNCTION mcp_desk_text(text) RETURNS text
        LANGUAGE sql IMMUTABLE PARALLEL SAFE
        RETURN regexp_replace($1, '[\x01-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f]+', ' ', 'g');

    CREATE TABLE notes (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id text NOT NULL UNIQUE,
        owner text NOT NULL,
        title text NOT NULL,
        body text NOT NULL,
        tags text[] NOT NULL DEFAULT '{}',
        version integer NOT NULL DEFAULT 1,
        created_at text NOT NULL,
        updated_at text NOT NULL,
        search tsvector GENERATED ALWAYS AS (
            setweight(to_tsvector('simple', mcp_desk_text(title)), 'A')
            || setweight(to_tsvector('simple', mcp_desk_text(left(body, 200000))), 'B')
            || setweight(to_tsvector('simple', mcp_desk_text(mcp_desk_words(tags))), 'C')
        ) STORED
    );
    CREATE INDEX notes_owner_updated ON notes (owner, updated_at DESC, seq DESC);
    CREATE INDEX notes_updated ON notes (updated_at DESC, seq DESC);
    CREATE INDEX notes_owner_seq ON notes (owner, seq DESC);
    CREATE INDEX notes_search ON notes USING gin (search);

    CREATE TABLE tickets (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id text NOT NULL UNIQUE,
        title text NOT NULL,
        description text NOT NULL,
        status text NOT NULL CHECK (status IN ('open', 'in_progress', 'waiting', 'resolved', 'closed')),
        priority text NOT NULL CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
        assignee text,
        tags text[] NOT NULL DEFAULT '{}',
        created_by text NOT NULL,
        version integer NOT NULL DEFAULT 1,
        created_at text NOT NULL,
        updated_at text NOT NULL,
        comments_text text NOT NULL DEFAULT '',
        search tsvector GENERATED ALWAYS AS (
            setweight(to_tsvector('simple', mcp_desk_text(title)), 'A')
            || setweight(to_tsvector('simple', mcp_desk_text(left(description, 200000))), 'B')
            || setweight(to_tsvector('simple', mcp_desk_text(left(comments_text, 200000))), 'C')
        ) STORED
    );
    CREATE INDEX tickets_updated ON tickets (updated_at DESC, seq DESC);
    CREATE INDEX tickets_status ON tickets (status, updated_at DESC);
    CREATE INDEX tickets_search ON tickets USING gin (search);

    CREATE TABLE comments (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id text NOT NULL UNIQUE,
        ticket_seq bigint NOT NULL REFERENCES tickets (seq) ON DELETE CASCADE,
        author text NOT NULL,
        body text NOT NULL,
        created_at text NOT NULL
    );
    CREATE INDEX comments_ticket ON comments (ticket_seq, seq);

    CREATE TABLE ticket_notes (
        ticket_seq bigint NOT NULL REFERENCES tickets (seq) ON DELETE CASCADE,
        note_id text NOT NULL REFERENCES notes (id) ON DELETE CASCADE,
        created_at text NOT NULL,
        PRIMARY KEY (ticket_seq, note_id)
    );
    CREATE INDEX ticket_notes_note ON ticket_notes (note_id);

    CREATE TABLE idempotency (
        scope text NOT NULL,
        key text NOT NULL,
        fingerprint text NOT NULL,
        object_id text NOT NULL,
        created_at text NOT NULL,
        PRIMARY KEY (scope, key)
    );

    CREATE TABLE docs (
        path text PRIMARY KEY,
        title text NOT NULL,
        content text NOT NULL,
        search tsvector GENERATED ALWAYS AS (
            setweight(to_tsvector('simple', mcp_desk_text(title)), 'A')
            || setweight(to_tsvector('simple', mcp_desk_text(left(content, 200000))), 'B')
        ) STORED
    );
    CREATE INDEX docs_search ON docs USING gin (search);

    CREATE TABLE health_probe (k integer PRIMARY KEY, v text NOT NULL);
    """,
    # 2: requesters, public replies, the SLA clock facts and the ticket history. Existing tickets that wait
    # or are resolved count from their last update; each gets a `created` entry (earlier changes were not kept).
    """
    ALTER TABLE tickets
        ADD COLUMN requester text,
        ADD COLUMN first_responded_at text,
        ADD COLUMN waiting_since text,
        ADD COLUMN paused_seconds integer NOT NULL DEFAULT 0,
        ADD COLUMN resolved_at text;
    UPDATE tickets SET waiting_since = updated_at WHERE status = 'waiting';
    UPDATE tickets SET resolved_at = updated_at WHERE status IN ('resolved', 'closed');
    ALTER TABLE comments ADD COLUMN visibility text NOT NULL DEFAULT 'internal'
        CHECK (visibility IN ('internal', 'public'));
    CREATE TABLE ticket_history (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id text NOT NULL UNIQUE,
        ticket_seq bigint NOT NULL REFERENCES tickets (seq) ON DELETE CASCADE,
        at text NOT NULL,
        actor text NOT NULL,
        kind text NOT NULL,
        changes jsonb NOT NULL DEFAULT '{}',
        detail jsonb NOT NULL DEFAULT '{}'
    );
    CREATE INDEX ticket_history_ticket ON ticket_history (ticket_seq, seq);
    INSERT INTO ticket_history (id, ticket_seq, at, actor, kind, detail)
        SELECT 'hist_' || substr(md5(random()::text || seq::text), 1, 16), seq, created_at, created_by, 'created',
            '{"migrated": true}'
        FROM tickets ORDER BY seq;
    """,
)

_BOOKKEEPING = (
    "CREATE TABLE IF NOT EXISTS schema_migrations "
    "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
)


async def migrate(conn: Any) -> int:
    """Apply every pending migration in one transaction under the advisory lock; the schema version afterwards.

    `conn` is an asyncpg connection outside any transaction. Raises RuntimeError when the database's
    schema is newer than this server knows (nothing is changed).
    """
    async with conn.transaction():
        await conn.execute("SET LOCAL statement_timeout = 0")  # building an index may take longer than a call
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute(_BOOKKEEPING)
        current = int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations"))
        if current > len(MIGRATIONS):
            raise RuntimeError(f"database schema {current} is newer than this server ({len(MIGRATIONS)}); upgrade it")
        for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
            await conn.execute(script)
            await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
    for version in range(current + 1, len(MIGRATIONS) + 1):
        log.info("storage_migrated", schema_version=version, backend="postgresql")
    return len(MIGRATIONS)
