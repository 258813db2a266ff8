"""Acknowledged writes survive SIGKILL of the real server, and `audit verify` catches edits of the real audit file."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import anyio
import pytest

from tests.conftest import ok
from tests.e2e.conftest import StartHttp
from tests.e2e.support import cli, connect

pytestmark = pytest.mark.anyio

NOTES = 25


async def create_notes(url: str, count: int, prefix: str) -> dict[str, str]:
    """Create `count` notes one after another; return id → title of every acknowledged one."""
    acknowledged: dict[str, str] = {}
    async with connect(url) as client:
        for number in range(count):
            title = f"{prefix} {number}"
            created = ok(await client.call_tool("create_note", {"title": title, "body": f"body {number}"}))
            acknowledged[created["id"]] = title
    return acknowledged


@pytest.mark.parametrize("durability", ["power", "process"])
async def test_acknowledged_notes_survive_sigkill_a_torn_audit_line_is_tolerated_and_tampering_is_named(
    start_http: StartHttp, tmp_path: Path, durability: str
) -> None:
    """Both durability levels promise that a crash of the process loses no acknowledged write or record."""
    env = {"MCP_DESK_RATE_LIMIT_RPM": "10000", "MCP_DESK_DURABILITY": durability}
    audit = tmp_path / "data" / "audit.jsonl"
    first = start_http(**env)
    with anyio.fail_after(60):
        acknowledged = await create_notes(first.url, NOTES, "durable")
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    with audit.open("ab") as sink:  # what a crash in the middle of a write leaves behind
        sink.write(b'{"seq":9999,"event_type":"tool_invoc')
    torn = cli(tmp_path, "audit", "verify", str(audit))
    assert "torn" in (torn.stdout + torn.stderr).lower()

    second = start_http(**env)
    with anyio.fail_after(60):
        async with connect(second.url) as client:
            for note_id, title in acknowledged.items():
                assert ok(await client.call_tool("get_note", {"note_id": note_id}))["title"] == title
            listed = ok(await client.call_tool("list_notes", {"limit": 100}))["items"]
            assert {item["id"] for item in listed} >= set(acknowledged)
        more = await create_notes(second.url, 3, "after restart")
    assert second.stop() == 0

    verified = cli(tmp_path, "audit", "verify", str(audit))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    records = [json.loads(line) for line in audit.read_text().splitlines() if line.endswith("}")]
    results = [r for r in records if r.get("event_type") == "tool_result" and r.get("tool") == "create_note"]
    assert len(results) >= NOTES + len(more)
    intents = [r for r in records if r.get("event_type") == "tool_invocation" and r.get("tool") == "create_note"]
    assert len(intents) >= NOTES + len(more)
    # The file kept every record through the crash, so the restart had nothing to recover from the journal.
    assert not any("recovered_seq" in r for r in records)
    tamper_and_verify(tmp_path, audit)


def tamper_and_verify(tmp_path: Path, audit: Path) -> None:
    """Edit one record of the real audit file, then remove it: `audit verify` fails naming that line."""
    lines = audit.read_text().splitlines()
    target = 3  # 1-based line number of the record we change
    record = json.loads(lines[target - 1])
    record["principal"] = "mallory"
    lines[target - 1] = json.dumps(record, separators=(",", ":"))
    audit.write_text("\n".join(lines) + "\n")
    tampered = cli(tmp_path, "audit", "verify", str(audit))
    assert tampered.returncode != 0
    assert f"line {target}" in tampered.stdout + tampered.stderr

    del lines[target - 1]
    audit.write_text("\n".join(lines) + "\n")
    removed = cli(tmp_path, "audit", "verify", str(audit))
    assert removed.returncode != 0
    assert f"line {target}" in removed.stdout + removed.stderr
