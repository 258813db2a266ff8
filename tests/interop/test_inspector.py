"""The MCP Inspector CLI (npm @modelcontextprotocol/inspector, `--cli`) against mcp-desk.

It starts the server from the README's Claude Desktop entry (`--config FILE --server mcp-desk`),
from working directory `/` as a desktop host may, and lists, calls, reads and gets prompts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import readme_claude_config

from .harness import INSPECTOR_JS, run_node

pytestmark = pytest.mark.slow


def claude_desktop_config(tmp_path: Path) -> Path:
    """The README's Claude Desktop entry, as written there, with this checkout's absolute paths."""
    path = tmp_path / "claude_desktop_config.json"
    path.write_text(json.dumps(readme_claude_config(tmp_path / "data")))
    return path


def inspect(config: Path, home: Path, *args: str) -> dict[str, Any]:
    """One Inspector CLI call; its JSON result."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_DESK_")}
    env |= {"HOME": str(home), "MCP_INSPECTOR_SECRET_STORE": "memory"}
    cli = [str(INSPECTOR_JS), "--cli", "--config", str(config), "--server", "mcp-desk", "--format", "json", *args]
    done = run_node(cli, cwd=Path("/"), env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout)["result"]
    return result


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A config file in the README's shape."""
    return claude_desktop_config(tmp_path)


def test_inspector_lists_tools_from_the_readme_config(config: Path, tmp_path: Path) -> None:
    """Every listed tool has a description and input schema; the note tools are there."""
    tools = inspect(config, tmp_path, "--method", "tools/list")["tools"]

    names = {tool["name"] for tool in tools}
    assert {"create_note", "get_note"} <= names
    assert all(tool["description"] and tool["inputSchema"]["type"] == "object" for tool in tools)


def test_inspector_creates_then_reads_a_note_as_tool_and_resource(config: Path, tmp_path: Path) -> None:
    """create_note, then get_note and resources/read in later sessions see the same stored note."""
    args = ["--method", "tools/call", "--tool-name", "create_note", "--tool-arg", "title=Inspector", "body=hello"]
    created = inspect(config, tmp_path, *args)["structuredContent"]

    fetched = inspect(
        config, tmp_path, "--method", "tools/call", "--tool-name", "get_note", "--tool-arg", f"note_id={created['id']}"
    )
    resource = inspect(config, tmp_path, "--method", "resources/read", "--uri", f"note://{created['id']}")

    assert fetched["isError"] is False
    assert fetched["structuredContent"] == created
    assert "Inspector" in resource["contents"][0]["text"]


def test_inspector_gets_the_triage_prompt(config: Path, tmp_path: Path) -> None:
    """prompts/list names triage_ticket and prompts/get renders it for a ticket created through a tool."""
    prompts = {prompt["name"] for prompt in inspect(config, tmp_path, "--method", "prompts/list")["prompts"]}
    new = [
        "--method",
        "tools/call",
        "--tool-name",
        "create_ticket",
        "--tool-arg",
        "title=VPN down",
        "description=No VPN",
    ]
    tools = {tool["name"] for tool in inspect(config, tmp_path, "--method", "tools/list")["tools"]}
    ticket_id = inspect(config, tmp_path, *new)["structuredContent"]["id"] if "create_ticket" in tools else "t1"
    args = ["--method", "prompts/get", "--prompt-name", "triage_ticket", "--prompt-args", f"ticket_id={ticket_id}"]
    got = inspect(config, tmp_path, *args)

    assert "triage_ticket" in prompts
    assert got["messages"]
