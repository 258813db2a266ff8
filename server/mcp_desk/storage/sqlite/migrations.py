"""Versioned schema migrations, applied in order at start (tracked by `PRAGMA user_version`).

Several servers may start at once on one file: all pending migrations run in one `BEGIN IMMEDIATE`
transaction that reads the schema version only once it holds the write lock, so the first server
migrates and the others, waiting on that lock, find the schema already current.
"""

from __future__ import annotations

import sqlite3

import structlog

log = structlog.get_logger()

MIGRATIONS: tuple[str, ...] = (
    # 1: notes, tickets, comments, links, idempotency keys, documents, and their full-text indexes.
    """
    CREATE TABLE notes (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        owner TEXT NOT NULL,
        title TEXT NOT NULL,
        body TEXT NOT NULL,
        tags TEXT NOT NULL DEFAULT '[]',
        version INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX notes_owner_updated ON notes (owner, updated_at DESC, seq DESC);
    CREATE VIRTUAL TABLE notes_fts USING fts5(
        title, body, tags, content='notes', content_rowid='seq', tokenize='unicode61 remove_diacritics 2'
    );
    CREATE TRIGGER notes_ai AFTER INSERT ON notes BEGIN
        INSERT INTO notes_fts (rowid, title, body, tags) VALUES (new.seq, new.title, new.body, new.tags);
    END;
    CREATE TRIGGER notes_ad AFTER DELETE ON notes BEGIN
        INSERT INTO notes_fts (notes_fts, rowid, title, body, tags)
        VALUES ('delete', old.seq, old.title, old.body, old.tags);
    END;
    CREATE TRIGGER notes_au AFTER UPDATE ON notes BEGIN
        INSERT INTO notes_fts (notes_fts, rowid, title, body, tags)
        VALUES ('delete', old.seq, old.title, old.body, old.tags);
        INSERT INTO notes_fts (rowid, title, body, tags) VALUES (new.seq, new.title, new.body, new.tags);
    END;

    CREATE TABLE tickets (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        title TEXT NOT NULL,
        description TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('open', 'in_progress', 'waiting', 'resolved', 'closed')),
        priority TEXT NOT NULL CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
        assignee TEXT,
        tags TEXT NOT NULL DEFAULT '[]',
        created_by TEXT NOT NULL,
        version INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX tickets_updated ON tickets (updated_at DESC, seq DESC);
    CREATE INDEX tickets_status ON tickets (status, updated_at DESC);
    CREATE TABLE comments (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        ticket_seq INTEGER NOT NULL REFERENCES tickets (seq) ON DELETE CASCADE,
        author TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX comments_ticket ON comments (ticket_seq, seq);
    CREATE TABLE ticket_notes (
        ticket_seq INTEGER NOT NULL REFERENCES tickets (seq) ON DELETE CASCADE,
        note_id TEXT NOT NULL REFERENCES notes (id) ON DELETE CASCADE,
        created_at TEXT NOT NULL,
        PRIMARY KEY (ticket_seq, note_id)
    );
    CREATE INDEX ticket_notes_note ON ticket_notes (note_id);
    CREATE VIRTUAL TABLE tickets_fts USING fts5(
        title, description, comments, tokenize='unicode61 remove_diacritics 2'
    );

    CREATE TABLE idempotency (
        scope TEXT NOT NULL,
        key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        object_id TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (scope, key)
    );

    CREATE TABLE docs (path TEXT PRIMARY KEY, title TEXT NOT NULL, content TEXT NOT NULL);
    CREATE VIRTUAL TABLE docs_fts USING fts5(
        path UNINDEXED, title, content, tokenize='unicode61 remove_diacritics 2'
    );
    """,
    # 2: prefix indexes for the last-word prefix match, and the owner in the notes index so a search
    # can page through one owner's matches newest-first (the bounded ranking window of search_notes).
    """
    DROP TRIGGER notes_ai;
    DROP TRIGGER notes_ad;
    DROP TRIGGER notes_au;
    DROP TABLE notes_fts;
    CREATE VIRTUAL TABLE notes_fts USING fts5(
        title, body, tags, owner, content='notes', content_rowid='seq',
        tokenize='unicode61 remove_diacritics 2', prefix='2 3'
    );
    INSERT INTO notes_fts (notes_fts) VALUES ('rebuild');
    CREATE TRIGGER notes_ai AFTER INSERT ON notes BEGIN
        INSERT INTO notes_fts (rowid, title, body, tags, owner)
        VALUES (new.seq, new.title, new.body, new.tags, new.owner);
    END;
    CREATE TRIGGER notes_ad AFTER DELETE ON notes BEGIN
        INSERT INTO notes_fts (notes_fts, rowid, title, body, tags, owner)
        VALUES ('delete', old.seq, old.title, old.body, old.tags, old.owner);
    END;
    CREATE TRIGGER notes_au AFTER UPDATE ON notes BEGIN
        INSERT INTO notes_fts (notes_fts, rowid, title, body, tags, owner)
        VALUES ('delete', old.seq, old.title, old.body, old.tags, old.owner);
        INSERT INTO notes_fts (rowid, title, body, tags, owner)
        VALUES (new.seq, new.title, new.body, new.tags, new.owner);
    END;

    CREATE VIRTUAL TABLE tickets_fts_v2 USING fts5(
        title, description, comments, tokenize='unicode61 remove_diacritics 2', prefix='2 3'
    );
    INSERT INTO tickets_fts_v2 (rowid, title, description, comments)
        SELECT rowid, title, description, comments FROM tickets_fts;
    DROP TABLE tickets_fts;
    ALTER TABLE tickets_fts_v2 RENAME TO tickets_fts;

    DROP TABLE docs_fts;
    CREATE VIRTUAL TABLE docs_fts USING fts5(
        path UNINDEXED, title, content, tokenize='unicode61 remove_diacritics 2', prefix='2 3'
    );
    INSERT INTO docs_fts (path, title, content) SELECT path, title, content FROM docs;
    """,
    # list_notes for a principal with notes:read_all: newest first over every owner's notes, by index
    # (without it each page sorted the whole table; 7 ms of server CPU a call at ~10k notes).
    """
    CREATE INDEX notes_updated ON notes (updated_at DESC, seq DESC);
    """,
    # 4: requesters, public replies, the SLA clock facts and the ticket history. Existing tickets that wait
    # or are resolved count from their last update; each gets a `created` entry (earlier changes were not kept).
    """
    ALTER TABLE tickets ADD COLUMN requester TEXT;
    ALTER TABLE tickets ADD COLUMN first_responded_at TEXT;
    ALTER TABLE tickets ADD COLUMN waiting_since TEXT;
    ALTER TABLE tickets ADD COLUMN paused_seconds INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE tickets ADD COLUMN resolved_at TEXT;
    UPDATE tickets SET waiting_since = updated_at WHERE status = 'waiting';
    UPDATE tickets SET resolved_at = updated_at WHERE status IN ('resolved', 'closed');
    ALTER TABLE comments ADD COLUMN visibility TEXT NOT NULL DEFAULT 'internal'
        CHECK (visibility IN ('internal', 'public'));
    CREATE TABLE ticket_history (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        ticket_seq INTEGER NOT NULL REFERENCES tickets (seq) ON DELETE CASCADE,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        kind TEXT NOT NULL,
        changes TEXT NOT NULL DEFAULT '{}',
        detail TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX ticket_history_ticket ON ticket_history (ticket_seq, seq);
    INSERT INTO ticket_history (id, ticket_seq, at, actor, kind, detail)
        SELECT 'hist_' || lower(hex(randomblob(8))), seq, created_at, created_by, 'created', '{"migrated": true}'
        FROM tickets ORDER BY seq;
    """,
    # 5: write-ahead audit intents committed with the write that carries them (mcp_desk.intents).
    """
    CREATE TABLE audit_journal (
        chain TEXT NOT NULL,
        seq INTEGER NOT NULL,
        record TEXT NOT NULL,
        PRIMARY KEY (chain, seq)
    ) WITHOUT ROWID;
    """,
)


def migrate(conn: sqlite3.Connection) -> int:
    """Apply every pending migration atomically; the schema version afterwards.

    Raises RuntimeError when the file's schema is newer than this server knows (nothing is changed).
    `conn` must be in autocommit mode (`isolation_level=None`) with a busy timeout to wait for the lock.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = int(conn.execute("PRAGMA user_version").fetchone()[0])  # read under the write lock
        if current > len(MIGRATIONS):
            raise RuntimeError(f"database schema {current} is newer than this server ({len(MIGRATIONS)}); upgrade it")
        for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
            for statement in statements(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    for version in range(current + 1, len(MIGRATIONS) + 1):
        log.info("storage_migrated", schema_version=version)
    return len(MIGRATIONS)


def statements(script: str) -> list[str]:
    """The statements of a script, one by one (`executescript` would commit the open transaction first)."""
    found, pending = [], ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                found.append(pending.strip())
            pending = ""
    if pending.strip(" \n;"):
        raise ValueError(f"incomplete statement at the end of a migration: {pending.strip()[:100]}")
    return found
