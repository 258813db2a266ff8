"""Knowledge-base tools and the Markdown export."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from tests.conftest import MakeApp, connected, error, ok

pytestmark = pytest.mark.anyio


async def test_search_docs_finds_the_vpn_runbook_and_read_doc_reads_it(client: Client) -> None:
    found = ok(await client.call_tool("search_docs", {"query": "vpn"}))
    ids = [item["id"] for item in found["items"]]
    assert "vpn-troubleshooting.md" in ids
    doc = ok(await client.call_tool("read_doc", {"path": "vpn-troubleshooting.md"}))
    assert doc["title"] and "VPN" in doc["content"]


@pytest.mark.parametrize("path", ["../etc/passwd", "/etc/passwd", "nope.md", ".env", "a\x00.md"])
async def test_read_doc_refuses_paths_outside_the_knowledge_base(client: Client, path: str) -> None:
    refused = error(await client.call_tool("read_doc", {"path": path}))
    assert refused.split(":")[0] in {"invalid_input", "permission_denied", "not_found"}


async def test_export_writes_a_markdown_report_and_never_overwrites(make_app: MakeApp, tmp_path: Path) -> None:
    app = make_app()
    async with connected(app) as client:
        ticket = ok(await client.call_tool("create_ticket", {"title": "Disk full", "description": "/var at 100%"}))
        ok(await client.call_tool("comment_ticket", {"ticket_id": ticket["id"], "body": "rotated logs"}))
        exported = ok(await client.call_tool("export_ticket", {"ticket_id": ticket["id"], "filename": "disk.md"}))
        report = (app.settings.export_path / "disk.md").read_text()
        assert exported == {"ticket_id": ticket["id"], "path": "disk.md", "bytes": len(report.encode())}
        assert "# Disk full" in report and "rotated logs" in report
        again = error(await client.call_tool("export_ticket", {"ticket_id": ticket["id"], "filename": "disk.md"}))
        assert again.startswith("conflict:")
        bad = error(await client.call_tool("export_ticket", {"ticket_id": ticket["id"], "filename": "../x.md"}))
        assert bad.startswith("invalid_input:")


async def test_policy_deny_patterns_hide_documents_from_tools_and_resources(make_app: MakeApp, tmp_path: Path) -> None:
    default = (Path(__file__).parents[2] / "server" / "mcp_desk" / "policy" / "default_policy.toml").read_text()
    policy = tmp_path / "policy.toml"
    policy.write_text(
        default.replace(
            '[tools.read_doc]\npaths = { root = "docs" }',
            '[tools.read_doc]\npaths = { root = "docs", deny = ["vpn-*"] }',
        )
    )
    async with connected(make_app(policy_file=policy)) as client:
        refused = error(await client.call_tool("read_doc", {"path": "vpn-troubleshooting.md"}))
        assert refused.startswith("permission_denied:")
        found = ok(await client.call_tool("search_docs", {"query": "vpn"}))
        assert "vpn-troubleshooting.md" not in [item["id"] for item in found["items"]]
        assert ok(await client.call_tool("read_doc", {"path": "disk-full.md"}))["title"]
