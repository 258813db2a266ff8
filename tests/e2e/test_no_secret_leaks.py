"""Secrets written by a client are stored as written but never shown back, logged or audited in the clear."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult

from tests.e2e.conftest import StartHttp
from tests.e2e.support import ERAS, connect

pytestmark = pytest.mark.anyio

# Real-looking, never real. Each maps to the part that must never appear in the clear.
AWS_KEY = "AKIAZ3QX7PLM4RT8WV2K"
AWS_SECRET = "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYzQ9Lk2P8sQ"
GITHUB = "ghp_4f8Kq2Lm9Zx7Rt1Vb3Nc6Wd0Ye5Hu2Jp8Qs1T"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6MTg5MzQ1NjAwMH0"
    ".4pcPyMD09olPSyXnrXCjTwXyr4BsezdI1AVTmud2fU4"
)
PASSWORD = "password=Tr0ub4dor&3xQz"
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEpAIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n"
    "-----END RSA PRIVATE KEY-----"
)
DSN = "postgres://deskuser:S3cretPassw0rd9@db.internal:5432/desk"
NEVER_SHOWN = {
    "aws key": AWS_KEY,
    "aws secret": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzQ9Lk2P8sQ",
    "github token": GITHUB,
    "jwt": JWT,
    "jwt signature": "4pcPyMD09olPSyXnrXCjTwXyr4BsezdI1AVTmud2fU4",
    "password": "Tr0ub4dor&3xQz",
    "private key": "MIIEpAIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun",
    "database password": "S3cretPassw0rd9",
}
BODY = "\n".join(["Deploy notes:", AWS_KEY, AWS_SECRET, GITHUB, f"Authorization: Bearer {JWT}", PASSWORD, PEM, DSN])
TITLE = f"rotate {GITHUB}"


def leaks(text: str) -> list[str]:
    """Names of the secrets that appear in the clear in `text`."""
    return [name for name, secret in NEVER_SHOWN.items() if secret in text]


class Seen:
    """Everything the client was shown."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def result(self, result: CallToolResult) -> CallToolResult:
        self.texts.append(result.model_dump_json())
        return result

    async def call(self, client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """Call a tool; return its structured content ({} for an error, whose text is kept)."""
        try:
            result = self.result(await client.call_tool(tool, arguments))
        except MCPError as exc:
            self.texts.append(exc.error.model_dump_json())
            return {}
        return result.structured_content or {}

    async def failing(self, call: Any) -> None:
        """Run a request expected to fail as a protocol error, keeping its message."""
        with pytest.raises(MCPError) as raised:
            await call
        self.texts.append(raised.value.error.model_dump_json())


async def a_session_full_of_secrets(client: Client, seen: Seen) -> tuple[str, str]:
    """Write secrets everywhere a client can, read them back every way there is; return the note and ticket ids."""
    note = await seen.call(client, "create_note", {"title": TITLE, "body": BODY, "tags": ["ops"]})
    assert note["id"]
    await seen.call(client, "get_note", {"note_id": note["id"]})
    await seen.call(client, "list_notes", {"tag": "ops"})
    await seen.call(client, "search_notes", {"query": "deploy"})
    await seen.call(client, "update_note", {"note_id": note["id"], "body": BODY + "\nv2", "expected_version": 1})
    await seen.call(client, "update_note", {"note_id": note["id"], "body": BODY, "expected_version": 1})  # stale
    ticket = await seen.call(client, "create_ticket", {"title": TITLE, "description": BODY})
    await seen.call(client, "comment_ticket", {"ticket_id": ticket["id"], "body": f"tried {DSN} and {PASSWORD}"})
    await seen.call(client, "get_ticket", {"ticket_id": ticket["id"]})
    await seen.call(client, "search_tickets", {"query": "deploy"})
    await seen.call(client, "list_tickets", {})
    await seen.call(client, "transition_ticket", {"ticket_id": ticket["id"], "status": "closed", "comment": PASSWORD})
    await seen.call(client, "transition_ticket", {"ticket_id": ticket["id"], "status": "waiting"})  # invalid
    for uri in (f"note://{note['id']}", f"ticket://{ticket['id']}"):
        seen.texts.append((await client.read_resource(uri)).model_dump_json())
    for prompt in ("triage_ticket", "draft_reply", "summarize_ticket"):
        seen.texts.append((await client.get_prompt(prompt, {"ticket_id": ticket["id"]})).model_dump_json())
    # Bad names and bad arguments that carry secrets: errors must not echo them.
    await seen.call(client, GITHUB, {"x": 1})
    await seen.call(client, "create_note", {"title": {"password": "Tr0ub4dor&3xQz"}, "body": PASSWORD})
    await seen.call(client, "create_note", {"title": "x" * 250 + GITHUB, "body": "b"})
    await seen.call(client, "create_note", {"title": "t", "body": "b", "api_key": GITHUB})
    await seen.call(client, "get_note", {"note_id": f"{AWS_KEY}-{DSN}"})
    await seen.call(client, "read_doc", {"path": f"../{PASSWORD}/{JWT}"})
    await seen.call(client, "search_docs", {"query": f"{GITHUB} {PASSWORD}"})
    await seen.failing(client.read_resource(f"note://{GITHUB}"))
    await seen.failing(client.get_prompt("triage_ticket", {"ticket_id": JWT}))
    await seen.failing(client.get_prompt(f"prompt_{GITHUB}", {}))
    return note["id"], ticket["id"]


async def test_secrets_are_stored_as_written_but_never_shown_logged_or_audited(
    start_http: StartHttp, tmp_path: Path
) -> None:
    server = start_http(MCP_DESK_LOG_LEVEL="debug", MCP_DESK_RATE_LIMIT_RPM="10000")
    seen = Seen()
    ids: list[tuple[str, str]] = []
    with anyio.fail_after(90):
        for mode in ERAS:
            async with connect(server.url, mode=mode) as client:
                ids.append(await a_session_full_of_secrets(client, seen))
    assert server.stop() == 0

    shown = "\n".join(seen.texts)
    assert "[REDACTED" in shown or "REDACTED" in shown.upper()
    shown_in_clear = [(name, text) for text in seen.texts for name in leaks(text)]
    assert not shown_in_clear, "\n".join(f"{name}: {text}" for name, text in shown_in_clear)
    assert leaks(server.log.read_text(errors="replace")) == []
    assert leaks((tmp_path / "data" / "audit.jsonl").read_text()) == []

    with sqlite3.connect(tmp_path / "data" / "mcp-desk.db") as db:
        for note_id, ticket_id in ids:
            (title, body) = db.execute("SELECT title, body FROM notes WHERE id = ?", (note_id,)).fetchone()
            assert (title, body) == (TITLE, BODY + "\nv2")
            (description,) = db.execute("SELECT description FROM tickets WHERE id = ?", (ticket_id,)).fetchone()
            assert description == BODY
            comments = [
                row[0]
                for row in db.execute(
                    "SELECT c.body FROM comments c JOIN tickets t ON t.seq = c.ticket_seq WHERE t.id = ?", (ticket_id,)
                )
            ]
            assert f"tried {DSN} and {PASSWORD}" in comments
