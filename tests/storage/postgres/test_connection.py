"""The pool's sessions (statement timeout, custom plans, a name), the described URL, forged cursor values."""

from __future__ import annotations

from typing import Any

import pytest

from mcp_desk.errors import InvalidInput
from mcp_desk.storage.cursor import encode_cursor
from mcp_desk.storage.postgres import PostgresStorage
from mcp_desk.storage.postgres.connection import PoolConfig, describe
from tests.storage.helpers import ALICE, fresh_database, note

pytestmark = pytest.mark.anyio


async def test_every_pooled_session_has_the_statement_timeout_and_plans_each_search_for_its_words() -> None:
    async with fresh_database() as url:
        store = PostgresStorage(url, pool=PoolConfig(statement_timeout_ms=1234))

        async def settings(conn: Any) -> tuple[str, str, str]:
            row = await conn.fetchrow(
                "SELECT current_setting('statement_timeout'), current_setting('plan_cache_mode'),"
                " current_setting('application_name')"
            )
            return row[0], row[1], row[2]

        async with store.open():
            # A generic plan of the prepared window query cannot tell a word in every note from a rare one.
            assert await store.db.read(settings) == ("1234ms", "force_custom_plan", "mcp-desk")


def test_a_described_url_keeps_host_port_and_database_only() -> None:
    assert describe("postgresql://desk:secret@db.internal:6432/desk?sslmode=require") == (
        "postgresql://db.internal:6432/desk"
    )
    assert describe("postgresql:///desk") == "postgresql://localhost/desk"


async def test_a_cursor_of_the_right_shape_with_a_forged_row_number_is_refused_not_sent_to_the_database() -> None:
    async with fresh_database() as url:
        store = PostgresStorage(url)
        async with store.open():
            await note(store)
            forged = encode_cursor(["notes", "2026", "not a row"])
            with pytest.raises(InvalidInput, match="cursor"):
                await store.list_notes(ALICE, tag=None, cursor=forged, limit=1)
            with pytest.raises(InvalidInput, match="cursor"):
                await store.list_tickets(
                    status=None, priority=None, assignee=None, cursor=encode_cursor(["tickets", "t", True]), limit=1
                )
