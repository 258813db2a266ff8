"""Asking the person to confirm a destructive call, the way the caller's client can.

- Handshake era, client with form elicitation: an `elicitation/create` request on the call's stream, a form
  with one boolean `confirm` field; the call waits for the answer.
- 2026-07-28 era, client with form elicitation: the call ends with an `input_required` result carrying the
  same form; the client asks and calls again with the answer and the request state we minted (the SDK seals
  that state and binds it to this tool, these arguments and this caller), and only then is anything deleted.
- A client that cannot ask: the tool goes ahead as it always did, unless the policy sets
  `require_confirmation` for it, in which case it is refused with `confirmation_required`.

Declined and cancelled answers, and an accepted form whose box was left unticked, delete nothing; the tool
says so in a normal (non-error) result: the person decided, nothing failed, and the model should report that
decision rather than retry. What happened is written to `env.state.confirmation`, which the audit records.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

# The one MCP wire type a tool hands back as-is: the registry passes an input_required result through.
from mcp_types import InputRequiredResult

from mcp_desk.domain.untrusted import clean_line
from mcp_desk.errors import ConfirmationRequired
from mcp_desk.tools.env import ToolEnv

MULTI_ROUND_SINCE = "2026-07-28"  # from this protocol version on, a call asks with an input_required result
ANSWER_KEY = "confirm"
CONFIRMING_TOOLS = frozenset({"delete_note", "delete_ticket"})
MAX_NAME_CHARS = 80
Outcome = Literal["accepted", "declined", "cancelled", "unavailable", "requested"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Asked:
    """How asking went: `pending` is the input_required result to return while the answer is awaited."""

    outcome: Outcome
    pending: InputRequiredResult | None = None

    @property
    def proceed(self) -> bool:
        """True when the tool may go ahead: the person agreed, or nobody could be asked and none is required."""
        return self.outcome in ("accepted", "unavailable")

    @property
    def confirmed(self) -> bool | None:
        """True when the person agreed, False when they did not, None when nobody was asked."""
        return {"accepted": True, "declined": False, "cancelled": False}.get(self.outcome)

    @property
    def reason(self) -> str:
        """Why nothing was done, for the result the model reads."""
        if self.outcome == "cancelled":
            return "the user dismissed the confirmation without answering; nothing was deleted"
        return "the user declined the confirmation; nothing was deleted"


def describe(kind: str, object_id: str, title: str) -> str:
    """What the person is asked about: the object's kind, id and (cleaned, shortened) title."""
    name = clean_line(" ".join(title.split()))
    if len(name) > MAX_NAME_CHARS:
        name = f"{name[:MAX_NAME_CHARS]}…"
    return f'Delete {kind} {object_id} ("{name}") permanently? This cannot be undone.'


def can_ask(env: ToolEnv) -> bool:
    """True when the client declared form elicitation (an empty `elicitation` capability means form)."""
    declared = env.client.client_capabilities.get("elicitation")
    if not isinstance(declared, Mapping):
        return False
    return not declared or "form" in declared


def confirmation_form(question: str) -> dict[str, Any]:
    """The `elicitation/create` params: a form with one required boolean."""
    field = {"type": "boolean", "title": "Delete permanently", "description": question, "default": False}
    schema = {"type": "object", "properties": {ANSWER_KEY: field}, "required": [ANSWER_KEY]}
    return {"message": question, "requestedSchema": schema}


async def confirm(env: ToolEnv, *, tool: str, target: str, question: str) -> Asked:
    """Ask the person to confirm `tool` on `target` as the client allows; record and return how it went."""
    asked = await _ask(env, tool=tool, target=target, question=question)
    env.state.confirmation = asked.outcome
    if asked.outcome == "unavailable" and tool in env.confirmation_required:
        raise ConfirmationRequired(
            f"{tool} needs the user's confirmation (require_confirmation is set in the policy), and this client "
            "cannot ask for it (no form elicitation); nothing was deleted. Ask the user to do this from a client "
            "that supports elicitation.",
            tool=tool,
        )
    return asked


async def _ask(env: ToolEnv, *, tool: str, target: str, question: str) -> Asked:
    if not can_ask(env):
        return Asked(outcome="unavailable")
    if (env.client.protocol_version or "") >= MULTI_ROUND_SINCE:
        return _multi_round(env, state=f"{tool} {target}", question=question)
    answer = await env.client.request("elicitation/create", confirmation_form(question))
    return Asked(outcome=_decision(answer))


def _multi_round(env: ToolEnv, *, state: str, question: str) -> Asked:
    """The answer to the question we asked in the previous round, or the round that asks it."""
    answer = env.client.input_responses.get(ANSWER_KEY)
    if answer is not None and env.client.request_state == state:
        return Asked(outcome=_decision(answer))
    request = {"method": "elicitation/create", "params": confirmation_form(question)}
    pending = InputRequiredResult.model_validate(
        {"resultType": "input_required", "inputRequests": {ANSWER_KEY: request}, "requestState": state}
    )
    return Asked(outcome="requested", pending=pending)


def _decision(answer: Mapping[str, Any]) -> Outcome:
    """An elicitation result as a decision: only an accepted form with the box ticked agrees."""
    action = answer.get("action")
    if action == "accept":
        content = answer.get("content")
        ticked = isinstance(content, Mapping) and content.get(ANSWER_KEY) is True
        return "accepted" if ticked else "declined"
    return "declined" if action == "decline" else "cancelled"
