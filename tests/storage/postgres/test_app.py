"""mcp-desk on PostgreSQL: chosen by MCP_DESK_DATABASE_URL, every tool through a real client, `mcp-desk migrate`."""

from __future__ import annotations

import io
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import asyncpg
import httpx
import pytest
import structlog
from pydantic import SecretStr

from mcp_desk.app import build_storage
from mcp_desk.cli import run
from mcp_desk.health import run_checks
from mcp_desk.storage.postgres import PostgresStorage
from mcp_desk.storage.postgres.migrations import MIGRATIONS
from mcp_desk.storage.sqlite import SqliteStorage
from tests.conftest import KB, MakeApp, MakeSettings, connected, error, ok
from tests.storage.helpers import fresh_database

pytestmark = pytest.mark.anyio
PASSWORD = "pw-app-7c2e91"


def with_password(url: str) -> str:
    return url.replace("postgres@", f"postgres:{PASSWORD}@", 1)


def test_the_database_url_chooses_the_backend_and_must_be_postgresql(make_settings: MakeSettings) -> None:
    assert isinstance(build_storage(make_settings()), SqliteStorage)
    pg = make_settings(database_url=SecretStr("postgresql://u:p@127.0.0.1:5432/desk"))
    assert isinstance(build_storage(pg), PostgresStorage)
    with pytest.raises(ValueError, match="postgresql://"):
        make_settings(database_url=SecretStr("mysql://u:p@127.0.0.1/desk"))


def test_a_postgresql_storage_check_gates_readiness_and_a_sqlite_one_does_not(make_app: MakeApp) -> None:
    """A replica that cannot reach its shared database leaves the load balancer; a full local disk does not."""
    sqlite = make_app()
    postgres = make_app(database_url=SecretStr("postgresql://u:p@127.0.0.1:5432/desk"))
    assert [c.gates_readiness for c in sqlite.checks if c.name == "storage"] == [False]
    assert [c.gates_readiness for c in postgres.checks if c.name == "storage"] == [True]


async def test_every_note_and_ticket_tool_works_on_postgresql_and_nothing_shows_the_password(
    make_app: MakeApp,
) -> None:
    async with fresh_database() as url:
        app = make_app(database_url=SecretStr(with_password(url)))
        async with connected(app) as client:
            made = ok(await client.call_tool("create_note", {"title": "VPN drops", "body": "tunnel resets hourly"}))
            again = ok(
                await client.call_tool(
                    "create_note", {"title": "VPN drops", "body": "tunnel resets hourly", "idempotency_key": "k"}
                )
            )
            found = ok(await client.call_tool("search_notes", {"query": "tunn*"}))
            assert {item["id"] for item in found["items"]} == {made["id"], again["id"]}
            listed = ok(await client.call_tool("list_notes", {"limit": 1}))
            assert listed["next_cursor"] is not None
            ok(await client.call_tool("update_note", {"note_id": made["id"], "title": "VPN", "expected_version": 1}))
            stale = error(
                await client.call_tool("update_note", {"note_id": made["id"], "title": "x", "expected_version": 1})
            )
            assert "version 2, not 1" in stale
            ticket = ok(await client.call_tool("create_ticket", {"title": "Printer jam", "description": "tray 2"}))
            ok(await client.call_tool("comment_ticket", {"ticket_id": ticket["id"], "body": "toner smudge"}))
            assert ok(await client.call_tool("search_tickets", {"query": "smudge"}))["items"][0]["id"] == ticket["id"]
            assert ok(await client.call_tool("search_docs", {"query": "vpn"}))["items"]
            checks = await run_checks(app.checks)
            sidecar = httpx.AsyncClient(transport=httpx.ASGITransport(app=app.sidecar), base_url="http://127.0.0.1")
            async with sidecar:
                metrics = (await sidecar.get("/metrics")).text  # a scrape refreshes the gauges
        assert checks["storage"].status == "ok"
        assert 'mcp_desk_db_pool_connections{state="max"} 10.0' in metrics
        assert 'mcp_desk_tickets{status="open"} 1.0' in metrics
        shown = json.dumps({name: (r.status, r.detail) for name, r in checks.items()}) + metrics
        assert PASSWORD not in shown


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """`mcp-desk migrate` configures logging as the command does; put the process's logging back afterwards."""
    root = logging.getLogger()
    saved_level, saved_handlers = root.level, list(root.handlers)
    yield
    for handler in list(root.handlers):
        if handler not in saved_handlers:
            root.removeHandler(handler)
    root.setLevel(saved_level)
    structlog.reset_defaults()


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


async def applied(url: str) -> list[int]:
    conn = await asyncpg.connect(url)
    try:
        return [row[0] for row in await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")]
    finally:
        await conn.close()


@pytest.mark.usefixtures("restored_logging")
def test_migrate_and_check_config_on_postgresql_never_print_the_password(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MCP_DESK_STORAGE_PATH", str(tmp_path / "data"))
    monkeypatch.setenv("MCP_DESK_DOCS_PATH", str(KB))

    async def scenario() -> None:
        async with fresh_database() as url:
            monkeypatch.setenv("MCP_DESK_DATABASE_URL", with_password(url))
            code, out, err = await anyio.to_thread.run_sync(cli, "migrate")
            assert code == 0, err
            assert "schema" in out and url.rsplit("/", 1)[1] in out
            assert await applied(url) == list(range(1, len(MIGRATIONS) + 1))
            code, shown, _ = await anyio.to_thread.run_sync(cli, "check-config")
            assert code == 0 and json.loads(shown)["MCP_DESK_DATABASE_URL"] == "**********"
            assert PASSWORD not in out + err + shown

    anyio.run(scenario)


@pytest.mark.usefixtures("restored_logging")
def test_migrate_works_for_sqlite_too(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MCP_DESK_STORAGE_PATH", str(tmp_path / "data"))
    code, out, err = cli("migrate")
    assert code == 0, err
    assert (tmp_path / "data" / "mcp-desk.db").is_file() and "mcp-desk.db" in out


@pytest.mark.usefixtures("restored_logging")
def test_migrate_against_an_unreachable_database_fails_with_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MCP_DESK_STORAGE_PATH", str(tmp_path / "data"))
    monkeypatch.setenv("MCP_DESK_DATABASE_URL", f"postgresql://desk:{PASSWORD}@127.0.0.1:1/desk")
    code, out, err = cli("migrate")
    assert code == 1 and out == ""
    assert "cannot connect to the database postgresql://127.0.0.1:1/desk" in err
    assert PASSWORD not in err


@pytest.mark.slow
async def test_three_servers_migrating_at_once_as_processes_all_succeed_and_migrate_once() -> None:
    async with fresh_database() as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_DESK_")}
        env |= {"MCP_DESK_DATABASE_URL": url, "MCP_DESK_LOG_FORMAT": "json"}
        results: list[tuple[int, str]] = []

        async def one() -> None:
            done = await anyio.run_process(
                [sys.executable, "-m", "mcp_desk", "migrate"], env=env, check=False, cwd=str(KB.parent)
            )
            results.append((done.returncode, done.stderr.decode()))

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(one)
        assert [code for code, _ in results] == [0, 0, 0], results
        migrated = [line for _, log in results for line in log.splitlines() if "storage_migrated" in line]
        assert len(migrated) == len(MIGRATIONS)
        assert await applied(url) == list(range(1, len(MIGRATIONS) + 1))
