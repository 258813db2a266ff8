"""Scopes, small builders and the real PostgreSQL databases shared by the storage tests."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from mcp_desk.domain.models import Note, Ticket
from mcp_desk.storage.base import NoteScope, Storage

ALICE = NoteScope(owner="alice")
BOB = NoteScope(owner="bob")
ADMIN = NoteScope(owner="root", all_owners=True)

# The PostgreSQL every machine of this project runs (trust authentication); each test gets a database of its own.
SERVER_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def database_url(name: str) -> str:
    """SERVER_URL pointed at database `name`."""
    return SERVER_URL.rsplit("/", 1)[0] + "/" + name


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """A new, empty database `t_<random>` on the test server (its URL), dropped afterwards."""
    name = f"t_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(SERVER_URL)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    try:
        yield database_url(name)
    finally:
        admin = await asyncpg.connect(SERVER_URL)
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await admin.close()


async def note(store: Storage, owner: str = "alice", title: str = "t", body: str = "b", key: str | None = None) -> Note:
    return await store.create_note(owner=owner, title=title, body=body, tags=["x"], idempotency_key=key)


async def ticket(store: Storage, title: str = "printer jam", key: str | None = None) -> Ticket:
    return await store.create_ticket(
        created_by="alice", title=title, description="d", priority="normal", tags=[], idempotency_key=key
    )
