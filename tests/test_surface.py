"""Resources, prompts, completions, subscriptions and logging through the MCP surface."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.conftest import REPO, MakeApp, connected, ok

DEFAULT_POLICY = REPO / "server" / "mcp_desk" / "policy" / "default_policy.toml"

pytestmark = pytest.mark.anyio


async def test_the_tool_list_has_schemas_and_truthful_annotations(make_app: MakeApp) -> None:
    async with connected(make_app(stdio_role="admin")) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert len(tools) == 24
    for tool in tools.values():
        assert tool.output_schema is not None and tool.output_schema["type"] == "object"
        assert tool.description
    assert tools["get_ticket"].annotations is not None and tools["get_ticket"].annotations.read_only_hint
    delete = tools["delete_note"].annotations
    assert delete is not None and delete.destructive_hint and not delete.read_only_hint
    create = tools["create_note"].annotations
    assert create is not None and not create.read_only_hint and not create.destructive_hint


async def test_an_unknown_tool_is_a_protocol_error(client: Client) -> None:
    with pytest.raises(MCPError) as caught:
        await client.call_tool("no_such_tool", {})
    assert caught.value.error.code == types.INVALID_PARAMS


async def test_resources_read_as_json_and_markdown(client: Client) -> None:
    ticket = ok(await client.call_tool("create_ticket", {"title": "VPN", "description": "d"}))
    note = ok(await client.call_tool("create_note", {"title": "n", "body": "b"}))
    read = await client.read_resource(f"ticket://{ticket['id']}")
    assert json.loads(read.contents[0].text)["id"] == ticket["id"]  # type: ignore[union-attr]  # text contents
    read = await client.read_resource(f"note://{note['id']}")
    assert json.loads(read.contents[0].text)["title"] == "n"  # type: ignore[union-attr]  # text contents
    doc = await client.read_resource("docs://vpn-troubleshooting.md")
    assert doc.contents[0].mime_type == "text/markdown"
    listed = {str(r.uri) for r in (await client.list_resources()).resources}
    assert {f"ticket://{ticket['id']}", f"note://{note['id']}", "docs://vpn-troubleshooting.md"} <= listed
    templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
    assert templates == {"note://{note_id}", "ticket://{ticket_id}", "docs://{path}"}


@pytest.mark.parametrize("uri", ["ticket://tkt_missing", "docs://../../etc/passwd", "file:///etc/passwd", "note://x"])
async def test_bad_resource_uris_are_protocol_errors(client: Client, uri: str) -> None:
    with pytest.raises(MCPError):
        await client.read_resource(uri)


async def test_prompts_include_the_ticket_and_matching_runbooks(client: Client) -> None:
    ticket = ok(await client.call_tool("create_ticket", {"title": "VPN tunnel drops", "description": "since Monday"}))
    names = {p.name for p in (await client.list_prompts()).prompts}
    assert names == {"triage_ticket", "draft_reply", "summarize_ticket"}
    for name in names:
        prompt = await client.get_prompt(name, {"ticket_id": ticket["id"]})
        text = prompt.messages[0].content.text  # type: ignore[union-attr]  # text content
        assert ticket["id"] in text and "since Monday" in text
    triage = await client.get_prompt("triage_ticket", {"ticket_id": ticket["id"]})
    assert "vpn-troubleshooting.md" in triage.messages[0].content.text  # type: ignore[union-attr]  # text
    with pytest.raises(MCPError):
        await client.get_prompt("draft_reply", {"ticket_id": ticket["id"], "tone": "angry"})
    with pytest.raises(MCPError):
        await client.get_prompt("triage_ticket", {"ticket_id": "tkt_nope"})


async def test_completions_for_ticket_ids_statuses_and_doc_paths(client: Client) -> None:
    ticket = ok(await client.call_tool("create_ticket", {"title": "x", "description": "d"}))
    ref = types.PromptReference(type="ref/prompt", name="triage_ticket")
    done = await client.complete(ref, {"name": "ticket_id", "value": ticket["id"][:6]})
    assert ticket["id"] in done.completion.values
    template = types.ResourceTemplateReference(type="ref/resource", uri="docs://{path}")
    paths = await client.complete(template, {"name": "path", "value": "vpn"})
    assert paths.completion.values == ["vpn-troubleshooting.md"]
    statuses = await client.complete(ref, {"name": "status", "value": "re"})
    assert statuses.completion.values == ["resolved"]


async def test_macro_name_completions_need_the_ticket_read_scope(make_app: MakeApp, tmp_path: Path) -> None:
    ref = types.PromptReference(type="ref/prompt", name="triage_ticket")
    async with connected(make_app(stdio_role="viewer")) as client:
        assert (await client.complete(ref, {"name": "macro", "value": "p"})).completion.values == [
            "password-reset-sent",
            "printer-resolved",
        ]
        assert (await client.complete(ref, {"name": "macro", "value": ""})).completion.total == 3
    policy = tmp_path / "policy.toml"
    policy.write_text(DEFAULT_POLICY.read_text() + '\n[roles.docs_only]\nscopes = ["docs:read"]\n')
    async with connected(make_app(policy_file=policy, stdio_role="docs_only")) as client:
        assert (await client.complete(ref, {"name": "macro", "value": ""})).completion.values == []


DOCS = types.ResourceTemplateReference(type="ref/resource", uri="docs://{path}")
NOTES = types.ResourceTemplateReference(type="ref/resource", uri="note://{note_id}")


def _plant_unreadable_docs(docs: Path, outside: Path) -> None:
    """Names the read path refuses: blocked patterns, and links (to a file and to a folder) leaving the root."""
    for name in ("credentials/aws.md", "secrets/token.md", ".env.md", "id_rsa.md", ".ssh/notes.md"):
        (docs / name).parent.mkdir(parents=True, exist_ok=True)
        (docs / name).write_text("TOKEN=x\n")
    outside.mkdir()
    (outside / "loot.md").write_text("outside\n")
    (docs / "loot.md").symlink_to(outside / "loot.md")
    (docs / "linked").symlink_to(outside)


async def test_doc_path_completions_and_listings_offer_only_what_the_caller_could_read(
    make_app: MakeApp, tmp_path: Path
) -> None:
    app = make_app()
    _plant_unreadable_docs(app.settings.docs_path, tmp_path / "outside")
    async with connected(app) as client:
        offered = (await client.complete(DOCS, {"name": "path", "value": ""})).completion.values
        listed = {str(r.uri).removeprefix("docs://") for r in (await client.list_resources()).resources}
        for prefix in ("cred", "secrets", ".env", "id_", ".ssh", "loot", "linked"):
            assert (await client.complete(DOCS, {"name": "path", "value": prefix})).completion.values == []
        for path in offered:
            ok(await client.call_tool("read_doc", {"path": path}))
    assert "vpn-troubleshooting.md" in offered
    assert {p for p in listed if not p.startswith(("ticket://", "note://"))} == set(offered)
    assert not [p for p in offered if p.split("/")[0] in {"credentials", "secrets", ".ssh", "linked"}]
    assert not {".env.md", "id_rsa.md", "loot.md"} & set(offered)


async def test_doc_path_completions_obey_policy_deny_patterns_and_the_docs_scope(
    make_app: MakeApp, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        DEFAULT_POLICY.read_text().replace(
            'paths = { root = "docs" }', 'paths = { root = "docs", deny = ["vpn-*"] }', 1
        )
        + '\n[roles.tickets_only]\nscopes = ["tickets:read"]\n'
    )
    async with connected(make_app(policy_file=policy)) as client:
        offered = (await client.complete(DOCS, {"name": "path", "value": ""})).completion.values
    assert offered and not [p for p in offered if p.startswith("vpn-")]
    async with connected(make_app(policy_file=policy, stdio_role="tickets_only")) as client:
        assert (await client.complete(DOCS, {"name": "path", "value": ""})).completion.values == []


async def test_note_id_completions_offer_only_notes_the_caller_may_read(make_app: MakeApp) -> None:
    async with connected(make_app(stdio_principal="alice")) as alice:
        note = ok(await alice.call_tool("create_note", {"title": "alice", "body": "private"}))
        assert (await alice.complete(NOTES, {"name": "note_id", "value": ""})).completion.values == [note["id"]]
    async with connected(make_app(stdio_principal="bob")) as bob:
        ok(await bob.call_tool("create_note", {"title": "bob", "body": "b"}))
        offered = (await bob.complete(NOTES, {"name": "note_id", "value": ""})).completion.values
        assert len(offered) == 1 and note["id"] not in offered
        assert (await bob.complete(NOTES, {"name": "note_id", "value": note["id"]})).completion.values == []
    async with connected(make_app(stdio_principal="root", stdio_role="admin")) as admin:
        assert note["id"] in (await admin.complete(NOTES, {"name": "note_id", "value": ""})).completion.values


# The handshake-era client API is deprecated by the SDK for 2026-07-28 servers; we still serve that era.
@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")
async def test_a_legacy_subscriber_hears_when_its_ticket_changes(make_app: MakeApp) -> None:
    received: list[str] = []
    got = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            received.append(str(message.params.uri))
            got.set()

    async with connected(make_app(), mode="legacy", message_handler=on_message) as client:
        ticket = ok(await client.call_tool("create_ticket", {"title": "x", "description": "d"}))
        await client.subscribe_resource(f"ticket://{ticket['id']}")
        ok(await client.call_tool("comment_ticket", {"ticket_id": ticket["id"], "body": "hi"}))
        with anyio.fail_after(5):
            await got.wait()
        assert received == [f"ticket://{ticket['id']}"]
        await client.unsubscribe_resource(f"ticket://{ticket['id']}")


@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")
async def test_set_level_delivers_tool_refusals_as_log_messages(make_app: MakeApp) -> None:
    logged: list[types.LoggingMessageNotificationParams] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logged.append(params)

    async with connected(make_app(), mode="legacy", logging_callback=on_log) as client:
        await client.call_tool("get_note", {"note_id": "note_missing"})
        assert logged == []
        await client.set_logging_level("warning")
        await client.call_tool("get_note", {"note_id": "note_missing"})
        assert [(p.level, p.data) for p in logged] == [("warning", "get_note refused: not_found")]


async def test_a_modern_listener_hears_when_its_ticket_changes(make_app: MakeApp) -> None:
    async with connected(make_app(), mode="2026-07-28") as client:
        ticket = ok(await client.call_tool("create_ticket", {"title": "x", "description": "d"}))
        uri = f"ticket://{ticket['id']}"
        async with client.listen(resource_subscriptions=[uri]) as subscription:
            ok(await client.call_tool("transition_ticket", {"ticket_id": ticket["id"], "status": "waiting"}))
            with anyio.fail_after(5):
                event = await subscription.__anext__()
        assert getattr(event, "uri", None) == uri


async def test_a_listener_without_ticket_scope_is_refused(make_app: MakeApp, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(DEFAULT_POLICY.read_text() + '\n[roles.docs_only]\nscopes = ["docs:read"]\n')
    async with connected(make_app(), mode="2026-07-28") as client:
        ticket = ok(await client.call_tool("create_ticket", {"title": "x", "description": "d"}))
    async with connected(make_app(policy_file=policy, stdio_role="docs_only"), mode="2026-07-28") as client:
        with pytest.raises(MCPError):
            async with client.listen(resource_subscriptions=[f"ticket://{ticket['id']}"]):
                pass


@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")
async def test_any_well_formed_uri_can_be_subscribed_but_only_readable_tickets_among_ours(make_app: MakeApp) -> None:
    async with connected(make_app(), mode="legacy") as client:
        await client.subscribe_resource("test://watched-resource")
        await client.unsubscribe_resource("test://watched-resource")
        with pytest.raises(MCPError):
            await client.subscribe_resource("ticket://no-such-ticket")
        with pytest.raises(MCPError):
            await client.subscribe_resource("not-a-uri")
