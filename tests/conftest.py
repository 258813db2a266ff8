"""Shared fixtures: real settings on tmp paths, a fresh app per test, the in-memory MCP client."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp_types import CallToolResult, TextContent

from mcp_desk.app import App, create_app
from mcp_desk.config import Settings

REPO = Path(__file__).resolve().parent.parent
KB = REPO / "docs" / "kb"


def readme_claude_config(data: Path) -> dict[str, Any]:
    """The README's Claude Desktop config, placeholder filled with this checkout and storage under `data`."""
    block = (REPO / "README.md").read_text().split("```json", 1)[1].split("```", 1)[0]
    filled = block.replace("/ABSOLUTE/PATH/TO/mcp-desk/data", str(data)).replace(
        "/ABSOLUTE/PATH/TO/mcp-desk", str(REPO)
    )
    config: dict[str, Any] = json.loads(filled)
    return config


# The product contract: every shipped tool and the scope it needs (None: get_usage needs no scope).
DOCUMENTED_TOOL_SCOPES: dict[str, str | None] = {
    "create_note": "notes:write",
    "get_note": "notes:read",
    "update_note": "notes:write",
    "delete_note": "notes:delete",
    "list_notes": "notes:read",
    "search_notes": "notes:read",
    "create_ticket": "tickets:write",
    "get_ticket": "tickets:read",
    "update_ticket": "tickets:write",
    "transition_ticket": "tickets:write",
    "assign_ticket": "tickets:write",
    "comment_ticket": "tickets:write",
    "get_ticket_history": "tickets:read",
    "link_note": "tickets:write",
    "list_tickets": "tickets:read",
    "search_tickets": "tickets:read",
    "delete_ticket": "tickets:delete",
    "list_macros": "tickets:read",
    "apply_macro": "tickets:write",
    "search_docs": "docs:read",
    "read_doc": "docs:read",
    "export_ticket": "exports:write",
    "run_diagnostic": "diagnostics:run",
    "get_usage": None,
}


MakeSettings = Callable[..., Settings]
MakeApp = Callable[..., App]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never read a developer's MCP_DESK_ variables or .env."""
    for key in list(os.environ):
        if key.startswith("MCP_DESK_"):
            monkeypatch.delenv(key)


@pytest.fixture
def make_settings(tmp_path: Path) -> MakeSettings:
    """Settings on a fresh storage folder with a copy of the sample knowledge base."""
    docs = tmp_path / "kb"
    if not docs.exists():
        shutil.copytree(KB, docs)

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "storage_path": tmp_path / "data",
            "docs_path": docs,
            "export_path": tmp_path / "exports",
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)

    return make


@pytest.fixture
def make_app(make_settings: MakeSettings) -> MakeApp:
    def make(**overrides: Any) -> App:
        return create_app(make_settings(**overrides), transport="memory")

    return make


@asynccontextmanager
async def connected(app: App, **client_options: Any) -> AsyncIterator[Client]:
    """Open the app's storage and an in-memory client session to it."""
    async with app.lifespan(), Client(app.server, **client_options) as client:
        yield client


@pytest.fixture
async def client(make_app: MakeApp) -> AsyncIterator[Client]:
    async with connected(make_app()) as c:
        yield c


def text_of(result: CallToolResult) -> str:
    """The first text block of a tool result."""
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


def ok(result: CallToolResult) -> dict[str, Any]:
    """The structured content of a successful call (fails the test with the error text otherwise)."""
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    structured: dict[str, Any] = result.structured_content
    assert json.loads(text_of(result)) == structured
    return structured


def error(result: CallToolResult) -> str:
    """The text of a tool error."""
    assert result.is_error
    return text_of(result)
