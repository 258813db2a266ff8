"""Tool schemas are a contract with every client: a change must come with an updated snapshot.

Compares each tool's name, inputSchema, outputSchema and annotations (as `tools/list` shows them
to an admin, who sees every tool) with tests/snapshots/tools.json.
To accept an intended change: `UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/test_tool_schemas.py`,
then review and commit the diff of tests/snapshots/tools.json.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

pytestmark = pytest.mark.anyio
SNAPSHOT = Path(__file__).parent / "snapshots" / "tools.json"
app_module = pytest.importorskip("mcp_desk.app", reason="create_app is not on main yet")


@pytest.fixture
def anyio_backend() -> str:
    """The SDK runs on asyncio."""
    return "asyncio"


async def _listed_tools(tmp_path: Path) -> list[dict[str, Any]]:
    settings_module = importlib.import_module("mcp_desk.config")
    settings = settings_module.Settings(
        storage_path=tmp_path / "data", export_path=tmp_path / "exports", stdio_role="admin"
    )
    app = app_module.create_app(settings)
    async with Client(app.server, raise_exceptions=True) as client:
        tools = (await client.list_tools()).tools
    keep = ("name", "inputSchema", "outputSchema", "annotations")
    dumped = [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in tools]
    return sorted(({key: tool.get(key) for key in keep} for tool in dumped), key=lambda tool: str(tool["name"]))


async def test_tool_schemas_match_the_snapshot(tmp_path: Path) -> None:
    """Names, arguments, output schemas and annotations are exactly as snapshotted."""
    listed = await _listed_tools(tmp_path)
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(json.dumps(listed, indent=2, sort_keys=True) + "\n")
    assert SNAPSHOT.exists(), "no snapshot yet: run UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/test_tool_schemas.py"

    assert listed == json.loads(SNAPSHOT.read_text())
