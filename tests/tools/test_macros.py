"""Macro tools through the real client: listing the policy's macros."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import MakeApp, connected, ok

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
