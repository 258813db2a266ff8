"""delete_ticket and delete_note ask the person first: accepted, declined, cancelled and unavailable, in both eras.

The handshake era asks with an `elicitation/create` request during the call; the 2026-07-28 era with an
`input_required` result the `mcp` client answers through the same elicitation callback and calls again.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

import mcp_types as types
import pytest
from mcp import Client
from mcp.client.context import ClientRequestContext

from mcp_desk.app import App
from mcp_desk.errors import ConfigError
from mcp_desk.policy.rules import Policy
from mcp_desk.tools.confirm import CONFIRMING_TOOLS, describe
from tests.conftest import REPO, MakeApp, connected, error, ok

pytestmark = pytest.mark.anyio
DEFAULT_POLICY = (REPO / "server" / "mcp_desk" / "policy" / "default_policy.toml").read_text()
Era = Literal["legacy", "2026-07-28"]
ERAS: tuple[Era, ...] = ("legacy", "2026-07-28")
TOOLS = ("delete_ticket", "delete_note")
Answer = Callable[[ClientRequestContext, types.ElicitRequestParams], Awaitable[types.ElicitResult]]
ANSWERS: dict[str, types.ElicitResult] = {
    "accepted": types.ElicitResult(action="accept", content={"confirm": True}),
    "unticked": types.ElicitResult(action="accept", content={"confirm": False}),
    "declined": types.ElicitResult(action="decline"),
    "cancelled": types.ElicitResult(action="cancel"),
}


def policy_file(tmp_path: Path, *, required: set[str]) -> Path:
    """The default roles with `require_confirmation` set on exactly the tools in `required`."""
    base = DEFAULT_POLICY.replace("[tools.delete_ticket]\nrequire_confirmation = true\n", "")
    tables = "".join(f"\n[tools.{tool}]\nrequire_confirmation = true\n" for tool in sorted(required))
    path = tmp_path / "policy.toml"
    path.write_text(base + tables)
    return path


class Person:
    """The elicitation callback: answers every question the same way and remembers what it was asked."""

    def __init__(self, answer: types.ElicitResult) -> None:
        self.answer = answer
        self.asked: list[types.ElicitRequestParams] = []

    async def __call__(self, context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.asked.append(params)
        return self.answer


def audit_records(app: App, tool: str) -> list[dict[str, Any]]:
    """The records of `tool`'s calls in the app's audit log."""
    lines = app.settings.resolved_audit_log_path.read_text().splitlines()
    return [record for line in lines if (record := json.loads(line)).get("tool") == tool]


async def target(client: Client, tool: str) -> tuple[str, str]:
    """A ticket or note to delete, and the get tool that tells whether it still exists."""
    if tool == "delete_ticket":
        created = ok(await client.call_tool("create_ticket", {"title": "Printer on fire", "description": "smoke"}))
        return created["id"], "get_ticket"
    created = ok(await client.call_tool("create_note", {"title": "Printer on fire", "body": "smoke"}))
    return created["id"], "get_note"


def _argument(tool: str) -> str:
    return "ticket_id" if tool == "delete_ticket" else "note_id"


async def _delete(app: App, tool: str, era: Era, person: Person | None) -> tuple[str, dict[str, Any], bool]:
    """Create an object, delete it through the real client, and say whether it still exists."""
    options: dict[str, Any] = {"mode": era}
    if person is not None:
        options["elicitation_callback"] = person
    async with connected(app, **options) as client:
        object_id, get = await target(client, tool)
        result = await client.call_tool(tool, {_argument(tool): object_id})
        still_there = not (await client.call_tool(get, {_argument(tool): object_id})).is_error
    outcome = {"error": error(result)} if result.is_error else ok(result)
    return object_id, outcome, still_there


@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize("tool", TOOLS)
async def test_an_accepted_confirmation_deletes_and_is_audited_as_confirmed(
    make_app: MakeApp, tmp_path: Path, tool: str, era: Era
) -> None:
    app = make_app(stdio_role="admin", policy_file=policy_file(tmp_path, required={tool}))
    person = Person(ANSWERS["accepted"])
    object_id, result, still_there = await _delete(app, tool, era, person)

    assert result == {"id": object_id, "deleted": True, "confirmed": True, "reason": None}
    assert not still_there
    [asked] = person.asked
    assert isinstance(asked, types.ElicitRequestFormParams)
    assert asked.message == describe(tool.removeprefix("delete_"), object_id, "Printer on fire")
    assert asked.requested_schema["properties"]["confirm"]["type"] == "boolean"
    assert asked.requested_schema["required"] == ["confirm"]
    [done] = [r for r in audit_records(app, tool) if r["event_type"] == "tool_result"][-1:]
    assert (done["outcome"], done["confirmed"], done["detail"]) == ("ok", True, "confirmation accepted")


@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize(
    ("answer", "word"), [("declined", "declined"), ("unticked", "declined"), ("cancelled", "cancelled")]
)
@pytest.mark.parametrize("tool", TOOLS)
async def test_a_declined_or_cancelled_confirmation_deletes_nothing_and_says_so(
    make_app: MakeApp, tool: str, era: Era, answer: str, word: str
) -> None:
    app = make_app(stdio_role="admin")
    object_id, result, still_there = await _delete(app, tool, era, Person(ANSWERS[answer]))

    assert still_there
    assert (result["id"], result["deleted"], result["confirmed"]) == (object_id, False, False)
    assert "nothing was deleted" in result["reason"]
    assert ("dismissed" if word == "cancelled" else "declined") in result["reason"]
    records = audit_records(app, tool)
    final = [r for r in records if r["event_type"] == "tool_result"][-1]
    assert (final["outcome"], final["confirmed"], final["detail"]) == ("ok", False, f"confirmation {word}")


@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize("tool", TOOLS)
async def test_a_client_that_cannot_ask_is_refused_when_the_policy_requires_confirmation(
    make_app: MakeApp, tmp_path: Path, tool: str, era: Era
) -> None:
    app = make_app(stdio_role="admin", policy_file=policy_file(tmp_path, required={tool}))
    _, result, still_there = await _delete(app, tool, era, None)

    assert still_there
    message = result["error"]
    assert message.startswith("confirmation_required:")
    assert "require_confirmation" in message and "cannot ask" in message and "nothing was deleted" in message
    [final] = [r for r in audit_records(app, tool) if r["event_type"] == "tool_result"]
    assert (final["outcome"], final["confirmed"]) == ("denied", None)
    assert final["detail"].startswith("confirmation_required:")


@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize("tool", TOOLS)
async def test_a_client_that_cannot_ask_deletes_as_before_without_require_confirmation(
    make_app: MakeApp, tmp_path: Path, tool: str, era: Era
) -> None:
    app = make_app(stdio_role="admin", policy_file=policy_file(tmp_path, required=set()))
    object_id, result, still_there = await _delete(app, tool, era, None)

    assert result == {"id": object_id, "deleted": True, "confirmed": None, "reason": None}
    assert not still_there
    [final] = [r for r in audit_records(app, tool) if r["event_type"] == "tool_result"]
    assert (final["outcome"], final["confirmed"], final["detail"]) == ("ok", None, "confirmation unavailable")


async def test_the_shipped_policy_requires_confirmation_for_tickets_not_notes(make_app: MakeApp) -> None:
    app = make_app(stdio_role="admin")
    _, ticket, ticket_kept = await _delete(app, "delete_ticket", "legacy", None)
    _, note, note_kept = await _delete(app, "delete_note", "legacy", None)

    assert ticket_kept and ticket["error"].startswith("confirmation_required:")
    assert not note_kept and note["deleted"] is True
    assert Policy.load().confirmation_required() == {"delete_ticket"}


async def test_a_multi_round_answer_counts_only_with_the_state_the_server_sealed(make_app: MakeApp) -> None:
    """A 2026-07-28 client that sends a made-up 'accept' on its first call is asked properly instead."""
    person = Person(ANSWERS["declined"])
    app = make_app(stdio_role="admin")
    async with connected(app, mode="2026-07-28", elicitation_callback=person) as client:
        ticket_id, _ = await target(client, "delete_ticket")
        forged = {"confirm": {"action": "accept", "content": {"confirm": True}}}
        result = ok(
            await client.call_tool("delete_ticket", {"ticket_id": ticket_id}, input_responses=forged)  # type: ignore[arg-type]  # wire shape
        )
        assert not (await client.call_tool("get_ticket", {"ticket_id": ticket_id})).is_error

    assert (result["deleted"], result["confirmed"]) == (False, False)
    assert len(person.asked) == 1
    requested = [r for r in audit_records(app, "delete_ticket") if r.get("detail") == "confirmation requested"]
    assert len(requested) == 1


async def test_nothing_is_asked_before_the_target_is_known_to_exist(make_app: MakeApp) -> None:
    person = Person(ANSWERS["accepted"])
    async with connected(make_app(stdio_role="admin"), mode="legacy", elicitation_callback=person) as client:
        missing = error(await client.call_tool("delete_ticket", {"ticket_id": "tkt_nope"}))

    assert missing.startswith("not_found:")
    assert person.asked == []


def test_require_confirmation_is_validated_against_the_tools_that_ask() -> None:
    policy = Policy.from_toml(
        "[roles.a]\nscopes = []\n[tools.create_note]\nrequire_confirmation = true", source="policy.toml"
    )
    tools = {"create_note": "notes:write", "delete_note": "notes:delete", "delete_ticket": "tickets:delete"}

    with pytest.raises(ConfigError, match=r"tools\.create_note\.require_confirmation: create_note never asks"):
        policy.check(tools, confirming=CONFIRMING_TOOLS)
    policy.check(tools)  # without the list of asking tools there is nothing to check against
    with pytest.raises(ConfigError, match="require_confirmation"):
        Policy.from_toml('[roles.a]\nscopes = []\n[tools.delete_note]\nrequire_confirmation = "yes"', source="t")


def test_the_question_names_the_object_and_its_title_cleaned_and_shortened() -> None:
    question = describe("ticket", "tkt_1", "line one\n\u202eSystem: " + "x" * 200)

    assert question.startswith('Delete ticket tkt_1 ("line one System: xxx')
    assert "\u202e" not in question and "\n" not in question
    assert '…") permanently? This cannot be undone.' in question
