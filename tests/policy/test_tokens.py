"""Token estimate and the output cap that shortens text without breaking the result's shape."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from mcp_desk.domain.principal import Principal
from mcp_desk.policy.pipeline import ToolCall, ToolSpec, build_chain
from mcp_desk.policy.tokens import ELLIPSIS, OutputCap, estimate_tokens, result_tokens, shrink

pytestmark = pytest.mark.anyio


async def _tool(**_: Any) -> dict[str, Any]:
    return {}


def _call() -> ToolCall:
    who = Principal(id="alice", role="agent", scopes=frozenset())
    return ToolCall(spec=ToolSpec(name="get_ticket", fn=_tool, scope=None), principal=who, arguments={}, request_id="r")


def _ticket(description: str, comments: int = 3) -> dict[str, Any]:
    return {
        "id": "t_01J9ZK",
        "version": 4,
        "status": "open",
        "description": description,
        "comments": [{"id": f"c{i}", "body": "short comment"} for i in range(comments)],
        "next_cursor": None,
    }


def test_the_estimate_is_a_quarter_of_the_compact_json_utf8_bytes() -> None:
    result = {"title": "café", "n": [1, 2]}
    compact = json.dumps(result, separators=(",", ":"), ensure_ascii=False).encode()

    assert estimate_tokens(result) == math.ceil(len(compact) / 4)
    assert estimate_tokens(dict(result)) == estimate_tokens(result)


def test_the_estimate_is_computed_once_per_call_and_shared() -> None:
    call = _call()
    assert result_tokens(call, {"a": "b" * 40}) == 12
    assert result_tokens(call, {"something": "else"}) == 12


async def test_a_result_under_the_cap_passes_unchanged_and_its_estimate_is_recorded() -> None:
    call = _call()

    async def endpoint(_: ToolCall) -> dict[str, Any]:
        return _ticket("fine")

    result = await build_chain([OutputCap(max_tokens=1000)], endpoint)(call)

    assert result == _ticket("fine")
    assert call.state.output_tokens == estimate_tokens(result)


async def test_a_result_over_the_cap_has_its_longest_text_shortened_and_stays_the_same_shape() -> None:
    original = _ticket("é" * 20_000)

    async def endpoint(_: ToolCall) -> dict[str, Any]:
        return original

    result = await build_chain([OutputCap(max_tokens=500)], endpoint)(_call())

    assert estimate_tokens(result) <= 500
    assert result["description"].endswith(ELLIPSIS)
    assert result["truncated"] is True
    assert "500-token output cap" in result["truncation_note"]
    assert "next_cursor" in result["truncation_note"]
    assert {k: v for k, v in result.items() if k not in {"description", "truncated", "truncation_note"}} == {
        k: v for k, v in original.items() if k != "description"
    }
    assert original["description"] == "é" * 20_000


def test_shortening_takes_the_longest_strings_first_and_leaves_short_ones_alone() -> None:
    result = {"items": [{"id": "a", "body": "x" * 3000}, {"id": "b", "body": "y" * 1000}], "next_cursor": "cur"}

    capped = shrink(result, max_tokens=800)

    assert estimate_tokens(capped) <= 800
    assert [item["id"] for item in capped["items"]] == ["a", "b"]
    assert capped["next_cursor"] == "cur"
    assert len(capped["items"][0]["body"]) < 3000
    assert capped["items"][1]["body"] == "y" * 1000


def test_a_result_of_many_short_strings_is_flagged_but_never_cut() -> None:
    result = {"items": [{"id": f"i{n}", "tag": "t" * 60} for n in range(200)], "next_cursor": None}

    capped = shrink(result, max_tokens=300)

    assert capped["truncated"] is True
    assert capped["items"] == result["items"]


def test_a_cap_below_one_token_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        OutputCap(max_tokens=0)


class Ticket(BaseModel):
    """A strict result model, as the domain models are (additionalProperties: false)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    description: str
    next_cursor: str | None


async def _get_ticket(**_: Any) -> Ticket:
    return Ticket(id="t", description="", next_cursor=None)


async def test_a_strict_result_model_gets_no_extra_keys_and_the_note_goes_to_call_state() -> None:
    call = ToolCall(
        spec=ToolSpec(name="get_ticket", fn=_get_ticket, scope=None),
        principal=Principal(id="alice", role="agent", scopes=frozenset()),
        arguments={},
        request_id="r",
    )

    async def endpoint(_: ToolCall) -> dict[str, Any]:
        return {"id": "t" * 200, "description": "d" * 20_000, "next_cursor": "c" * 500}

    result = await build_chain([OutputCap(max_tokens=400)], endpoint)(call)

    assert Ticket.model_validate(result).description.endswith(ELLIPSIS)
    assert (result["id"], result["next_cursor"]) == ("t" * 200, "c" * 500)
    assert call.state.truncation_note is not None
    assert "400-token output cap" in call.state.truncation_note
