"""The role matrix and owner isolation through the real HTTP transport, with keys made by `mcp-desk keys create`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.conftest import DOCUMENTED_TOOL_SCOPES as TOOL_SCOPES
from tests.conftest import REPO, error, ok
from tests.e2e.conftest import HttpServer, launch
from tests.e2e.support import ERAS, Era, add_key, connect

pytestmark = pytest.mark.anyio

READ = {"notes:read", "tickets:read", "docs:read"}
WRITE = {"notes:write", "tickets:write", "exports:write"}
ROLE_SCOPES: dict[str, set[str]] = {
    "viewer": READ,
    "agent": READ | WRITE,
    "admin": READ | WRITE | {"notes:delete", "tickets:delete", "notes:read_all", "notes:write_all", "diagnostics:run"},
    "docs_only": {"docs:read"},
}
# Roles that are not shipped: one shows that resources and prompts check scopes too, the other that
# reading every owner's notes does not grant changing them.
EXTRA_ROLE = (
    '\n[roles.docs_only]\ndescription = "Reads the knowledge base only."\nscopes = ["docs:read"]\n'
    '\n[roles.auditor]\ndescription = "Reads every note."\n'
    'scopes = ["notes:read", "notes:write", "notes:delete", "notes:read_all"]\n'
)
PRINCIPALS = {
    "vera": "viewer",
    "alice": "agent",
    "bob": "agent",
    "root": "admin",
    "dora": "docs_only",
    "audra": "auditor",
}


@dataclass
class Desk:
    """One running server and a key per principal."""

    server: HttpServer
    keys: dict[str, str]


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    directory = tmp_path_factory.mktemp("roles")
    policy = directory / "policy.toml"
    policy.write_text((REPO / "server" / "mcp_desk" / "policy" / "default_policy.toml").read_text() + EXTRA_ROLE)
    keys = {name: add_key(directory / "keys.txt", name, role) for name, role in PRINCIPALS.items()}
    server = launch(
        directory,
        "server",
        MCP_DESK_API_KEYS_FILE=str(directory / "keys.txt"),
        MCP_DESK_POLICY_FILE=str(policy),
        MCP_DESK_RATE_LIMIT_RPM="100000",
    )
    yield Desk(server=server, keys=keys)
    assert server.stop() == 0


@pytest.mark.parametrize("role", ["viewer", "agent", "admin", "docs_only"])
async def test_each_role_lists_exactly_its_tools_and_a_hidden_tool_is_refused_naming_the_missing_scope(
    desk: Desk, role: str
) -> None:
    principal = next(name for name, r in PRINCIPALS.items() if r == role)
    allowed = {tool for tool, scope in TOOL_SCOPES.items() if scope is None or scope in ROLE_SCOPES[role]}
    with anyio.fail_after(60):
        async with connect(desk.server.url, desk.keys[principal]) as client:
            listed = {tool.name for tool in (await client.list_tools()).tools}
            assert listed == allowed
            for tool in sorted(set(TOOL_SCOPES) - allowed):
                message = error(await client.call_tool(tool, {}))
                assert message.startswith("permission_denied:"), message
                assert f"'{TOOL_SCOPES[tool]}'" in message, message
            with pytest.raises(MCPError) as raised:
                await client.call_tool("drop_database", {})
            assert raised.value.error.code == -32602


async def test_an_allowed_call_of_every_tool_passes_authorization_for_the_admin(desk: Desk) -> None:
    """Admin may call everything: no call is refused for a scope (some fail validation on empty arguments)."""
    with anyio.fail_after(60):
        async with connect(desk.server.url, desk.keys["root"]) as client:
            for tool in TOOL_SCOPES:
                result = await client.call_tool(tool, {})
                assert not (result.is_error and "permission_denied" in error(result)), tool


def same_shape(message: str, note_id: str) -> str:
    """The message with the note id masked, to compare errors about different ids."""
    return message.replace(note_id, "<id>")


async def note_error(client: Client, note_id: str) -> str:
    return same_shape(error(await client.call_tool("get_note", {"note_id": note_id})), note_id)


async def resource_error(client: Client, note_id: str) -> str:
    with pytest.raises(MCPError) as raised:
        await client.read_resource(f"note://{note_id}")
    return same_shape(raised.value.error.message, note_id)


@pytest.mark.parametrize("mode", ERAS)
async def test_another_agent_sees_a_note_as_missing_but_the_admin_sees_it(desk: Desk, mode: Era) -> None:
    missing = "note_0123456789abcdef"
    with anyio.fail_after(60):
        async with connect(desk.server.url, desk.keys["alice"], mode) as alice:
            note = ok(await alice.call_tool("create_note", {"title": "alice private", "body": "mine", "tags": ["x"]}))
            assert ok(await alice.call_tool("get_note", {"note_id": note["id"]}))["owner"] == "alice"
        async with connect(desk.server.url, desk.keys["bob"], mode) as bob:
            assert await note_error(bob, note["id"]) == await note_error(bob, missing)
            assert "not_found" in await note_error(bob, note["id"])
            assert await resource_error(bob, note["id"]) == await resource_error(bob, missing)
            message = error(await bob.call_tool("update_note", {"note_id": note["id"], "body": "bob was here"}))
            assert same_shape(message, note["id"]).startswith("not_found:"), message
            message = error(await bob.call_tool("delete_note", {"note_id": note["id"]}))
            assert message.startswith("permission_denied:") and "'notes:delete'" in message, message
            listed = ok(await bob.call_tool("list_notes", {"tag": "x"}))["items"]
            searched = ok(await bob.call_tool("search_notes", {"query": "private"}))["items"]
            assert note["id"] not in {item["id"] for item in listed + searched}
            ticket = ok(await bob.call_tool("create_ticket", {"title": "link?", "description": "d"}))
            linked = error(await bob.call_tool("link_note", {"ticket_id": ticket["id"], "note_id": note["id"]}))
            assert "not_found" in linked
        async with connect(desk.server.url, desk.keys["root"], mode) as admin:
            seen = ok(await admin.call_tool("get_note", {"note_id": note["id"]}))
            assert (seen["owner"], seen["body"]) == ("alice", "mine")
            contents = (await admin.read_resource(f"note://{note['id']}")).contents
            assert "alice private" in getattr(contents[0], "text", "")
        async with connect(desk.server.url, desk.keys["alice"], mode) as alice:
            assert ok(await alice.call_tool("get_note", {"note_id": note["id"]}))["body"] == "mine"


async def test_resources_and_prompts_need_the_same_scopes_as_the_tools(desk: Desk) -> None:
    with anyio.fail_after(60):
        async with connect(desk.server.url, desk.keys["alice"]) as alice:
            ticket = ok(await alice.call_tool("create_ticket", {"title": "VPN down", "description": "cannot connect"}))
            note = ok(await alice.call_tool("create_note", {"title": "n", "body": "b"}))
        async with connect(desk.server.url, desk.keys["dora"]) as dora:
            for uri, scope in [(f"ticket://{ticket['id']}", "tickets:read"), (f"note://{note['id']}", "notes:read")]:
                with pytest.raises(MCPError) as raised:
                    await dora.read_resource(uri)
                assert "permission_denied" in raised.value.error.message
                assert scope in raised.value.error.message
            doc = (await dora.read_resource("docs://vpn-troubleshooting.md")).contents[0]
            assert "VPN" in getattr(doc, "text", "")
            uris = {str(resource.uri) for resource in (await dora.list_resources()).resources}
            assert uris
            assert all(uri.startswith("docs://") for uri in uris)
            for prompt in ("triage_ticket", "draft_reply", "summarize_ticket"):
                with pytest.raises(MCPError) as raised:
                    await dora.get_prompt(prompt, {"ticket_id": ticket["id"]})
                assert "tickets:read" in raised.value.error.message
        async with connect(desk.server.url, desk.keys["vera"]) as vera:
            text = (await vera.read_resource(f"ticket://{ticket['id']}")).contents[0]
            assert "VPN down" in getattr(text, "text", "")
            triage = await vera.get_prompt("triage_ticket", {"ticket_id": ticket["id"]})
            assert "VPN down" in str(triage.messages)
            with pytest.raises(MCPError) as raised:
                await vera.read_resource(f"note://{note['id']}")
            assert "not_found" in raised.value.error.message


async def test_reading_every_note_does_not_grant_changing_them_but_write_all_does(desk: Desk) -> None:
    with anyio.fail_after(60):
        async with connect(desk.server.url, desk.keys["alice"]) as alice:
            note = ok(await alice.call_tool("create_note", {"title": "alice", "body": "mine"}))
        async with connect(desk.server.url, desk.keys["audra"]) as auditor:
            assert ok(await auditor.call_tool("get_note", {"note_id": note["id"]}))["body"] == "mine"
            for tool, arguments in [
                ("update_note", {"note_id": note["id"], "body": "audited"}),
                ("delete_note", {"note_id": note["id"]}),
            ]:
                message = error(await auditor.call_tool(tool, arguments))
                assert message.startswith("permission_denied:") and "'notes:write_all'" in message, message
        async with connect(desk.server.url, desk.keys["root"]) as admin:
            assert ok(await admin.call_tool("update_note", {"note_id": note["id"], "body": "fixed"}))["version"] == 2
            assert ok(await admin.call_tool("delete_note", {"note_id": note["id"]}))["deleted"]
