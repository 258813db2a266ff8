"""The bare-SDK baseline: `create_note` / `get_note` / `list_notes` on SQLite (WAL), nothing else.

This is what a competent developer writes with the official `mcp` SDK alone: sync tools (the
SDK runs them in a worker thread), one SQLite writer connection behind a lock (no busy-wait sleeps)
and one reader connection per worker thread, WAL + synchronous=FULL (as mcp-desk), an FTS5 index
kept by triggers with mcp-desk's notes indexes (its owner column and prefix indexes, and both
listing indexes: the same indexing work mcp-desk does on write). No auth, no policy, no audit.

    python -m bench.baseline_server stdio --db PATH
    python -m bench.baseline_server http --db PATH --port 8123 [--loop asyncio] [--http h11] [--gc-freeze]

Over HTTP it serves exactly what `MCPServer.run("streamable-http")` serves (uvicorn's defaults,
which pick uvloop and httptools when installed, as they are here), minus the per-request access
log line, which no one benchmarking a server leaves on.
"""

from __future__ import annotations

import argparse
import gc
import json
import secrets
import sqlite3
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mcp.server import MCPServer

OWNER = "bench"
SCHEMA = """
CREATE TABLE IF NOT EXISTS notes (
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
CREATE INDEX IF NOT EXISTS notes_owner_updated ON notes (owner, updated_at DESC, seq DESC);
CREATE INDEX IF NOT EXISTS notes_updated ON notes (updated_at DESC, seq DESC);
CREATE VIRTUAL TABLE IF NOT EXISTS notes_fts USING fts5(
    title, body, tags, owner, content='notes', content_rowid='seq',
    tokenize='unicode61 remove_diacritics 2', prefix='2 3'
);
CREATE TRIGGER IF NOT EXISTS notes_ai AFTER INSERT ON notes BEGIN
    INSERT INTO notes_fts(rowid, title, body, tags, owner) VALUES (new.seq, new.title, new.body, new.tags, new.owner);
END;
"""


class NoteDB:
    """One writer connection behind a lock, one reader connection per worker thread (WAL)."""

    def __init__(self, path: Path, synchronous: str = "FULL") -> None:
        self.path = path
        self.synchronous = synchronous
        self._local = threading.local()
        self.write_lock = threading.Lock()
        self.writer = self._connect(check_same_thread=False)
        self.writer.executescript(SCHEMA)

    def _connect(self, check_same_thread: bool = True) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=check_same_thread)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    @property
    def reader(self) -> sqlite3.Connection:
        """This thread's read connection."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn


def build_server(db_path: Path, synchronous: str = "FULL") -> MCPServer[Any]:
    """The baseline MCPServer with its two tools."""
    db = NoteDB(db_path, synchronous)
    mcp: MCPServer[Any] = MCPServer("baseline-notes")

    @mcp.tool()
    def create_note(title: str, body: str, tags: list[str] | None = None) -> dict[str, Any]:
        """Create a note and return it."""
        now = datetime.now(UTC).isoformat(timespec="microseconds")
        note_id = "note_" + secrets.token_hex(8)
        tag_list = tags or []
        with db.write_lock:
            conn = db.writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "INSERT INTO notes (id, owner, title, body, tags, created_at, updated_at) VALUES (?,?,?,?,?,?,?)",
                    (note_id, OWNER, title, body, json.dumps(tag_list), now, now),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return {"id": note_id, "title": title, "body": body, "tags": tag_list, "version": 1, "created_at": now}

    @mcp.tool()
    def get_note(note_id: str) -> dict[str, Any]:
        """Fetch one note by id."""
        row = db.reader.execute(
            "SELECT id, title, body, tags, version, created_at FROM notes WHERE id = ?", (note_id,)
        ).fetchone()
        if row is None:
            raise ValueError(f"note {note_id} not found")
        return {
            "id": row[0],
            "title": row[1],
            "body": row[2],
            "tags": json.loads(row[3]),
            "version": row[4],
            "created_at": row[5],
        }

    @mcp.tool()
    def list_notes(limit: int = 20) -> dict[str, Any]:
        """The caller's newest notes (as mcp-desk's list_notes pages them: newest first, then by seq)."""
        rows = db.reader.execute(
            "SELECT id, title, tags, version, updated_at FROM notes WHERE owner = ? "
            "ORDER BY updated_at DESC, seq DESC LIMIT ?",
            (OWNER, min(max(limit, 1), 100)),
        ).fetchall()
        items = [
            {"id": r[0], "title": r[1], "tags": json.loads(r[2]), "version": r[3], "updated_at": r[4]} for r in rows
        ]
        return {"items": items, "next_cursor": None}

    return mcp


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and serve."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("transport", choices=["stdio", "http"])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--json-response", action="store_true", help="answer POSTs with JSON instead of SSE")
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto", help="uvicorn event loop")
    parser.add_argument("--http", choices=["auto", "h11", "httptools"], default="auto", help="uvicorn HTTP parser")
    parser.add_argument("--synchronous", choices=["FULL", "NORMAL"], default="FULL", help="as mcp-desk: FULL")
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() after start-up")
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the baseline binds loopback only")

    mcp = build_server(args.db, args.synchronous)
    if args.transport == "stdio":
        if args.gc_freeze:
            gc.freeze()
        mcp.run("stdio")
        return 0

    import uvicorn

    app = mcp.streamable_http_app(json_response=args.json_response, host=args.host)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        loop=args.loop,
        http=args.http,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    if args.gc_freeze:
        gc.freeze()
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
