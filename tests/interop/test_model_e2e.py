"""A real model triages a ticket through an MCP client session (skipped unless ANTHROPIC_API_KEY is set).

Asserts on the tool calls the model made and on the ticket's final state, never on its wording.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from .harness import desk_command, desk_env

pytestmark = [
    pytest.mark.slow,
    pytest.mark.anyio,
    pytest.mark.skipif(not os.environ.get("ANTHROPIC_API_KEY"), reason="ANTHROPIC_API_KEY is not set"),
]

MODEL = os.environ.get("ANTHROPIC_MODEL", "claude-sonnet-4-5")
MAX_TURNS = 8
SAMPLE_TICKET = {
    "title": "VPN down for the whole Berlin office",
    "description": (
        "Since 09:10 nobody in Berlin can connect to the VPN; sales calls are blocked. Error: TLS handshake timeout."
    ),
}
INSTRUCTIONS = (
    "You are a support desk agent. Triage ticket {ticket_id}: read it, set its priority to match the impact, "
    "move it to in_progress, and leave a short comment with the first diagnostic step. Use the tools; be brief."
)


@pytest.fixture
def anyio_backend() -> str:
    """The SDK runs on asyncio."""
    return "asyncio"


def _tool_params(tools: list[Any]) -> list[dict[str, Any]]:
    return [{"name": t.name, "description": t.description or "", "input_schema": t.input_schema} for t in tools]


async def _triage(client: Client, ticket_id: str) -> list[str]:
    """Run the tool-use loop; return the names of the tools the model called, in order."""
    from anthropic import AsyncAnthropic

    model = AsyncAnthropic()
    tools = _tool_params((await client.list_tools()).tools)
    messages: list[dict[str, Any]] = [{"role": "user", "content": INSTRUCTIONS.format(ticket_id=ticket_id)}]
    called: list[str] = []
    for _ in range(MAX_TURNS):
        reply = await model.messages.create(model=MODEL, max_tokens=1024, tools=tools, messages=messages)  # type: ignore[arg-type]  # plain dicts are the documented input
        messages.append({"role": "assistant", "content": [block.model_dump() for block in reply.content]})
        uses = [block for block in reply.content if block.type == "tool_use"]
        if not uses:
            break
        results = []
        for use in uses:
            called.append(use.name)
            result = await client.call_tool(use.name, dict(use.input))
            text = (
                result.structured_content if result.structured_content is not None else result.content[0].model_dump()
            )
            results.append(
                {"type": "tool_result", "tool_use_id": use.id, "content": json.dumps(text), "is_error": result.is_error}
            )
        messages.append({"role": "user", "content": results})
    return called


async def test_model_triages_a_ticket_with_our_tools(tmp_path: Path) -> None:
    """The model reads the ticket, raises its priority, starts work on it and comments."""
    command = desk_command()
    params = StdioServerParameters(command=command[0], args=[*command[1:], "stdio"], env=desk_env(tmp_path))
    with anyio.fail_after(300):
        async with Client(params) as client:
            created = await client.call_tool("create_ticket", SAMPLE_TICKET)
            assert created.structured_content is not None
            ticket_id = str(created.structured_content["id"])
            called = await _triage(client, ticket_id)
            final = (await client.call_tool("get_ticket", {"ticket_id": ticket_id})).structured_content

    assert "get_ticket" in called
    assert "transition_ticket" in called
    assert final is not None
    assert final["status"] == "in_progress"
    assert final["priority"] in {"high", "urgent"}
    assert "comment_ticket" in called
