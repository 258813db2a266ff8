"""Macro tools through the real client: listing the policy's macros and applying one, all or nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from pydantic import SecretStr

from mcp_desk.app import App
from tests.conftest import MakeApp, connected, error, ok
from tests.storage.helpers import fresh_database

pytestmark = pytest.mark.anyio

POLICY = """
[roles.agent]
scopes = ["tickets:read", "tickets:write"]

[macros.ack]
description = "Acknowledge the ticket."
reply = "Thanks {requester}, we are looking at {id}."
visibility = "public"

[macros.escalate]
description = "Hand it to the network team."
status = "in_progress"
priority = "urgent"
add_tags = ["escalated", "network"]
assignee = "netops"
"""

ESCALATE_WITH_REPLY = """
[macros.escalate-noted]
description = "Escalate, with a note."
status = "in_progress"
priority = "urgent"
add_tags = ["escalated", "network"]
assignee = "netops"
reply = "Escalated {id} ({title}) for {requester}: {priority}, {assignee}, {status}. {{literal}}"
"""


def policy_file(tmp_path: Path, text: str = POLICY) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


async def test_list_macros_shows_each_macro_and_exactly_what_it_changes(make_app: MakeApp, tmp_path: Path) -> None:
    async with connected(make_app(policy_file=policy_file(tmp_path))) as client:
        listed = ok(await client.call_tool("list_macros", {}))
    assert listed["items"] == [
        {
            "id": "ack",
            "description": "Acknowledge the ticket.",
            "changes": ["posts a public reply"],
            "status": None,
            "priority": None,
            "add_tags": [],
            "assignee": None,
            "reply": "Thanks {requester}, we are looking at {id}.",
            "reply_visibility": "public",
        },
        {
            "id": "escalate",
            "description": "Hand it to the network team.",
            "changes": [
                "status → in_progress",
                "priority → urgent",
                "adds tags escalated, network",
                "assigns to netops",
            ],
            "status": "in_progress",
            "priority": "urgent",
            "add_tags": ["escalated", "network"],
            "assignee": "netops",
            "reply": None,
            "reply_visibility": None,
        },
    ]


async def test_a_viewer_lists_the_built_in_macros(make_app: MakeApp) -> None:
    async with connected(make_app(stdio_role="viewer")) as client:
        listed = ok(await client.call_tool("list_macros", {}))
    assert [item["id"] for item in listed["items"]] == [
        "password-reset-sent",
        "printer-resolved",
        "vpn-escalate-netops",
    ]


async def test_a_policy_without_macros_lists_none(make_app: MakeApp, tmp_path: Path) -> None:
    text = '[roles.agent]\nscopes = ["tickets:read"]\n'
    async with connected(make_app(policy_file=policy_file(tmp_path, text))) as bare:
        assert ok(await bare.call_tool("list_macros", {})) == {"items": []}


async def ticket_for(app: App, *, requester: str | None = "dana@example.com", tags: list[str] | None = None) -> str:
    """A fresh open ticket created through storage, so it can carry a requester."""
    ticket = await app.storage.create_ticket(
        created_by="local",
        title="Printer on 3 prints {id} {{ garbage",
        description="3rd floor",
        priority="normal",
        tags=tags or [],
        idempotency_key=None,
        requester=requester,
    )
    return ticket.id


async def state(app: App, ticket_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Everything apply_macro could touch: the ticket (with its comments) and its whole history."""
    ticket = await app.storage.get_ticket(ticket_id)
    history = await app.storage.ticket_history(ticket_id, cursor=None, limit=100)
    return ticket.model_dump(), [entry.model_dump() for entry in history.items]


async def refused_unchanged(app: App, client: Client, arguments: dict[str, Any]) -> str:
    """apply_macro's refusal, once checked that it left the ticket, its comments and its history as they were."""
    before = await state(app, arguments["ticket_id"])
    refused = error(await client.call_tool("apply_macro", arguments))
    assert await state(app, arguments["ticket_id"]) == before
    return refused


async def test_a_macro_changes_fields_posts_its_reply_and_records_one_history_entry(
    make_app: MakeApp, tmp_path: Path
) -> None:
    app = make_app(policy_file=policy_file(tmp_path, POLICY + ESCALATE_WITH_REPLY))
    async with connected(app) as client:
        ticket_id = await ticket_for(app, tags=["network"])
        _, before = await state(app, ticket_id)
        applied = ok(await client.call_tool("apply_macro", {"ticket_id": ticket_id, "macro": "escalate-noted"}))
        _, after = await state(app, ticket_id)
    assert (applied["status"], applied["priority"], applied["assignee"]) == ("in_progress", "urgent", "netops")
    assert applied["tags"] == ["network", "escalated"]
    assert applied["version"] == 2
    [comment] = applied["comments"]
    assert (comment["author"], comment["visibility"]) == ("local", "internal")
    assert comment["body"] == (
        f"Escalated {ticket_id} (Printer on 3 prints {{id}} {{{{ garbage) for dana@example.com: "
        "urgent, netops, in_progress. {literal}"
    )
    [entry] = after[len(before) :]
    assert (entry["kind"], entry["actor"]) == ("macro", "local")
    assert entry["detail"] == {"macro": "escalate-noted", "comment_id": comment["id"], "visibility": "internal"}
    assert entry["changes"]["status"] == {"old": "open", "new": "in_progress"}
    assert entry["changes"]["tags"] == {"old": ["network"], "new": ["network", "escalated"]}
    assert {"priority", "assignee"} <= set(entry["changes"])


async def test_the_sample_printer_macro_resolves_with_a_public_reply_to_the_requester(make_app: MakeApp) -> None:
    app = make_app()
    async with connected(app) as client:
        ticket_id = await ticket_for(app)
        applied = ok(await client.call_tool("apply_macro", {"ticket_id": ticket_id, "macro": "printer-resolved"}))
    assert (applied["status"], applied["tags"]) == ("resolved", ["printer"])
    [comment] = applied["comments"]
    assert comment["visibility"] == "public"
    assert comment["body"].startswith("Hello dana@example.com,\n\nYour printer is back online")
    assert f"reply to this ticket ({ticket_id})" in comment["body"]


async def test_a_refused_status_move_changes_nothing_and_names_the_allowed_statuses(make_app: MakeApp) -> None:
    app = make_app()
    async with connected(app) as client:
        ticket_id = await ticket_for(app)
        ok(await client.call_tool("transition_ticket", {"ticket_id": ticket_id, "status": "closed"}))
        refused = await refused_unchanged(app, client, {"ticket_id": ticket_id, "macro": "printer-resolved"})
    assert refused == f"conflict: ticket {ticket_id} is closed; allowed next: open"


async def test_a_stale_expected_version_changes_nothing(make_app: MakeApp) -> None:
    app = make_app()
    async with connected(app) as client:
        ticket_id = await ticket_for(app)
        ok(await client.call_tool("comment_ticket", {"ticket_id": ticket_id, "body": "on it"}))
        arguments = {"ticket_id": ticket_id, "macro": "printer-resolved", "expected_version": 1}
        refused = await refused_unchanged(app, client, arguments)
        current = ok(await client.call_tool("apply_macro", {**arguments, "expected_version": 2}))
    assert refused.startswith(f"conflict: ticket {ticket_id} is at version 2, not 1:")
    assert (current["status"], current["version"]) == ("resolved", 3)


async def test_tags_beyond_the_limit_are_refused_and_change_nothing(make_app: MakeApp) -> None:
    app = make_app(max_tags=2)
    async with connected(app) as client:
        ticket_id = await ticket_for(app, tags=["a", "vpn"])
        refused = await refused_unchanged(app, client, {"ticket_id": ticket_id, "macro": "vpn-escalate-netops"})
    assert refused == (
        f"invalid_input: ticket {ticket_id} has 2 tags and macro vpn-escalate-netops adds 1 (escalated); the most "
        "is 2 (MCP_DESK_MAX_TAGS). Remove tags with update_ticket, then apply the macro again"
    )


async def test_a_reply_needing_a_missing_requester_is_refused_saying_how_to_fix_it(make_app: MakeApp) -> None:
    app = make_app()
    async with connected(app) as client:
        ticket_id = await ticket_for(app, requester=None)
        refused = await refused_unchanged(app, client, {"ticket_id": ticket_id, "macro": "printer-resolved"})
    assert refused == (
        f"invalid_input: macro printer-resolved's reply uses {{requester}}, but ticket {ticket_id} has no "
        "requester; set it with update_ticket, then apply it"
    )


async def test_an_unknown_macro_is_refused_naming_the_macros_there_are(make_app: MakeApp, tmp_path: Path) -> None:
    async with connected(make_app()) as client:
        refused = error(await client.call_tool("apply_macro", {"ticket_id": "tkt_x", "macro": "printer-fixed"}))
    assert refused == (
        "invalid_input: no macro 'printer-fixed'; the macros are: password-reset-sent, printer-resolved, "
        "vpn-escalate-netops (see list_macros)"
    )
    text = '[roles.agent]\nscopes = ["tickets:read", "tickets:write"]\n'
    async with connected(make_app(policy_file=policy_file(tmp_path, text))) as bare:
        refused = error(await bare.call_tool("apply_macro", {"ticket_id": "tkt_x", "macro": "x" * 64}))
    assert refused == f"invalid_input: no macro '{'x' * 64}': the policy defines no macros"


async def test_a_missing_ticket_is_not_found(client: Client) -> None:
    refused = error(await client.call_tool("apply_macro", {"ticket_id": "tkt_missing", "macro": "printer-resolved"}))
    assert refused.startswith("not_found:")


async def test_concurrent_applies_without_expected_version_both_land_one_entry_each(make_app: MakeApp) -> None:
    """The second writer finds the version moved, reads again and applies against the new state."""
    app = make_app()
    async with connected(app) as client:
        ticket_id = await ticket_for(app)
        _, before = await state(app, ticket_id)
        results: list[dict[str, Any]] = []

        async def apply() -> None:
            arguments = {"ticket_id": ticket_id, "macro": "vpn-escalate-netops"}
            results.append(ok(await client.call_tool("apply_macro", arguments)))

        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(apply)
                group.start_soon(apply)
        ticket, after = await state(app, ticket_id)
    assert sorted(result["version"] for result in results) == [2, 3]
    assert ticket["comment_count"] == 2 and ticket["tags"] == ["vpn", "escalated"]
    assert [entry["kind"] for entry in after[len(before) :]] == ["macro", "macro"]


async def test_a_viewer_may_list_but_not_apply_macros(make_app: MakeApp) -> None:
    async with connected(make_app(stdio_role="viewer")) as client:
        refused = error(await client.call_tool("apply_macro", {"ticket_id": "tkt_x", "macro": "printer-resolved"}))
    assert refused.startswith("permission_denied:") and "tickets:write" in refused


async def test_a_macro_without_a_reply_posts_no_comment_and_a_repeat_changes_nothing(
    make_app: MakeApp, tmp_path: Path
) -> None:
    """Storage records no entry for a change that changes nothing; the second apply returns the ticket as it is."""
    app = make_app(policy_file=policy_file(tmp_path))
    async with connected(app) as client:
        ticket_id = await ticket_for(app)
        _, before = await state(app, ticket_id)
        first = ok(await client.call_tool("apply_macro", {"ticket_id": ticket_id, "macro": "escalate"}))
        _, once = await state(app, ticket_id)
        again = ok(await client.call_tool("apply_macro", {"ticket_id": ticket_id, "macro": "escalate"}))
        _, twice = await state(app, ticket_id)
    assert (first["comment_count"], first["version"], first["tags"]) == (0, 2, ["escalated", "network"])
    [entry] = once[len(before) :]
    assert (entry["kind"], entry["detail"]) == ("macro", {"macro": "escalate"})
    assert again == first and twice == once


async def test_a_rendered_reply_over_the_comment_limit_is_refused_and_changes_nothing(
    make_app: MakeApp, tmp_path: Path
) -> None:
    roles = '[roles.agent]\nscopes = ["tickets:read", "tickets:write"]\n'
    text = roles + '[macros.thanks]\ndescription = "d"\nstatus = "resolved"\nreply = "Re {title}: fixed, thanks!"\n'
    app = make_app(policy_file=policy_file(tmp_path, text), max_comment_bytes=40)
    async with connected(app) as client:
        ticket_id = await ticket_for(app)
        refused = await refused_unchanged(app, client, {"ticket_id": ticket_id, "macro": "thanks"})
    assert refused == (
        f"invalid_input: macro thanks's reply for ticket {ticket_id} is 54 bytes; the limit is 40 bytes "
        "(MCP_DESK_MAX_COMMENT_BYTES)"
    )


async def test_a_macro_is_all_or_nothing_on_postgresql_too(make_app: MakeApp) -> None:
    async with fresh_database() as url:
        app = make_app(database_url=SecretStr(url))
        async with connected(app) as client:
            ticket_id = await ticket_for(app)
            resolved = ok(await client.call_tool("apply_macro", {"ticket_id": ticket_id, "macro": "printer-resolved"}))
            arguments = {"ticket_id": ticket_id, "macro": "vpn-escalate-netops"}
            refused = await refused_unchanged(app, client, arguments)
            _, history = await state(app, ticket_id)
    assert (resolved["status"], resolved["comments"][0]["visibility"]) == ("resolved", "public")
    assert [entry["kind"] for entry in history] == ["created", "macro"]
    assert refused == f"conflict: ticket {ticket_id} is resolved; allowed next: closed, open"
