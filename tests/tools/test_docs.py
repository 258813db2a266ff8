"""Knowledge-base tools and the Markdown export."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.conftest import MakeApp, connected, error, ok
from tests.link_race import SECRET, swap_links

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
        assert "\n| Disk full\n" in report and "\n| rotated logs\n" in report
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


async def _race_reads(client: Client, rounds: int) -> list[str]:
    """Read both racing paths through the tool and the resource; what came back (refusals skipped)."""
    seen: list[str] = []
    for _ in range(rounds):
        for path in ("doc.md", "sub/doc.md"):
            result = await client.call_tool("read_doc", {"path": path})
            if not result.is_error:
                seen.append(ok(result)["content"])
            try:
                contents = (await client.read_resource(f"docs://{path}")).contents
            except MCPError:
                continue
            seen.append(getattr(contents[0], "text", ""))
    return seen


async def test_read_doc_and_docs_resource_never_follow_a_link_swapped_in_during_the_read(
    make_app: MakeApp, tmp_path: Path
) -> None:
    """The check-then-open race through the real client: a swapped-in link never yields the outside file."""
    app = make_app(rate_limit_rpm=1_000_000, rate_limit_tpm=100_000_000)
    docs = app.settings.docs_path
    outside = docs.parent / "outside"
    outside.mkdir()
    (outside / "doc.md").write_bytes(SECRET)
    (docs / "doc.md").write_bytes(b"inside\n")
    (docs / "sub").mkdir()
    (docs / "sub" / "doc.md").write_bytes(b"inside\n")
    stop = threading.Event()
    swapper = threading.Thread(target=swap_links, args=(docs, stop))
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # hand the GIL over often, so the swaps land between a check and an open
    try:
        async with connected(app) as client:
            swapper.start()
            seen = await _race_reads(client, 150)
    finally:
        stop.set()
        if swapper.ident is not None:
            swapper.join(timeout=10)
        sys.setswitchinterval(interval)
    assert seen
    assert set(seen) == {"inside\n"}
