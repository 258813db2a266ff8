"""Token estimate of a tool result, and the per-call output cap that keeps results schema-valid.

The estimator: a result travels back as a JSON-able dict (the structured content) and the text
rendering is the JSON of that same dict, so one compact JSON encoding (orjson: no spaces, UTF-8)
is measured and ``ceil(utf8_bytes / 4)`` is the estimate. Four bytes a token is the usual rule of
thumb for English text and JSON with BPE tokenizers; it overestimates for ASCII-heavy code and
underestimates for CJK text, which is acceptable for budgeting: it is consistent (the same dict
always costs the same), cheap (one serialisation, no tokenizer) and model-agnostic. Structured
content and its text rendering carry the same JSON, and a host feeds one of them to the model, so
it is counted once.

Shrinking never cuts JSON: only string values longer than ``MIN_KEPT_CHARS`` are shortened (the
longest first), and never identifiers (`id`, `*_id`, cursors, paths, URIs, `*_at`), so enums,
timestamps, numbers and list lengths are untouched and the dict still matches its output schema.
List items are never dropped, because a result whose `items` were cut could only page on with a
cursor minted by the store, which a guard cannot mint. `truncated` / `truncation_note` are added
to the dict only when the tool's result model declares them or tolerates extra keys (models with
``extra="forbid"`` publish ``additionalProperties: false``); the note is always left in
``call.state.truncation_note``, and the registry shows it to the client (a text block and ``_meta``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import orjson

from mcp_desk.policy.pipeline import Next, ToolCall, ToolSpec

BYTES_PER_TOKEN = 4
MIN_KEPT_CHARS = 64
ELLIPSIS = " […truncated]"
FLAG_FIELDS = frozenset({"truncated", "truncation_note"})
PROTECTED_KEYS = frozenset({"id", "cursor", "next_cursor", "path", "uri", "url"})

Path = tuple[str | int, ...]


def encoded(result: Any) -> bytes:
    """The compact JSON bytes the estimate is based on."""
    return orjson.dumps(result, default=str, option=orjson.OPT_NON_STR_KEYS)


def estimate_tokens(result: Any) -> int:
    """Estimated tokens a model pays to read `result`: ceil(compact JSON bytes / 4)."""
    return math.ceil(len(encoded(result)) / BYTES_PER_TOKEN)


def result_tokens(call: ToolCall, result: Any) -> int:
    """The estimate for this call's result, computed once and shared through `call.state`."""
    if call.state.output_tokens is None:
        call.state.output_tokens = estimate_tokens(result)
    return call.state.output_tokens


def truncation_note(max_tokens: int) -> str:
    """What the model reads when a result was shortened: why, and how to read the rest."""
    return (
        f"This result was shortened to fit the {max_tokens}-token output cap: long text fields end with "
        f"'{ELLIPSIS.strip()}'. To read more, fetch one object at a time (get_note, get_ticket, read_doc), "
        "narrow the query, or page with a smaller `limit` and the returned `next_cursor`."
    )


class OutputCap:
    """Shrinks a result over `max_tokens` by shortening its longest strings; never cuts JSON."""

    def __init__(self, *, max_tokens: int) -> None:
        """Configure the cap (tokens, as `estimate_tokens` counts them)."""
        if max_tokens < 1:
            raise ValueError("max_tokens must be positive")
        self.max_tokens = max_tokens

    async def __call__(self, call: ToolCall, call_next: Next) -> Any:
        """Run the call, then cap its result and record the estimate in `call.state`."""
        result = await call_next(call)
        tokens = estimate_tokens(result)
        if isinstance(result, dict) and tokens > self.max_tokens:
            result = shrink(result, max_tokens=self.max_tokens, flag=_accepts_flags(call.spec))
            call.state.truncation_note = truncation_note(self.max_tokens)
            tokens = estimate_tokens(result)
        call.state.output_tokens = tokens
        return result


def _accepts_flags(spec: ToolSpec) -> bool:
    """True when the result schema allows `truncated` / `truncation_note` (declared, or extra keys allowed)."""
    try:
        model = spec.result
    except TypeError:  # a tool without a result model returns a plain dict: any key is valid
        return True
    return model.model_fields.keys() >= FLAG_FIELDS or model.model_config.get("extra") != "forbid"


def shrink(result: dict[str, Any], *, max_tokens: int, flag: bool = True) -> dict[str, Any]:
    """A copy of `result` whose longest strings are shortened until it fits; flagged when `flag`."""
    out: dict[str, Any] = orjson.loads(encoded(result))
    if flag:
        out["truncated"] = True
        out["truncation_note"] = truncation_note(max_tokens)
    budget = max_tokens * BYTES_PER_TOKEN
    while (excess := len(encoded(out)) - budget) > 0:
        longest = _longest_string(out)
        if longest is None:
            break
        path, text = longest
        keep = max(MIN_KEPT_CHARS, len(text) - excess - len(ELLIPSIS))
        _assign(out, path, text[:keep] + ELLIPSIS)
    return out


def _longest_string(result: dict[str, Any]) -> tuple[Path, str] | None:
    best: tuple[Path, str] | None = None
    for path, value in _strings(result, ()):
        if path[-1:] == ("truncation_note",) or len(value) <= MIN_KEPT_CHARS + len(ELLIPSIS):
            continue
        if best is None or len(value) > len(best[1]):
            best = (path, value)
    return best


def _strings(value: Any, path: Path) -> Iterator[tuple[Path, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, child in value.items():
            if not _protected(str(key)):
                yield from _strings(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _strings(child, (*path, index))


def _protected(key: str) -> bool:
    return key in PROTECTED_KEYS or key.endswith(("_id", "_at", "_cursor"))


def _assign(root: dict[str, Any], path: Path, value: str) -> None:
    parent: Any = root
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = value
