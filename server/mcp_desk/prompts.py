"""Prompts `triage_ticket`, `draft_reply`, `summarize_ticket`: the ticket plus the runbooks that match it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError

from mcp_desk.domain.models import DocSummary, Ticket
from mcp_desk.domain.principal import Principal
from mcp_desk.errors import AppError
from mcp_desk.policy.permissions import has_scope, require_scope
from mcp_desk.registry import RequestEnv, SdkChannel
from mcp_desk.storage.base import Storage

RUNBOOKS_SHOWN = 3
PROMPT_SCOPE = "tickets:read"

_TICKET_ARG = types.PromptArgument(name="ticket_id", description="The ticket to work on.", required=True)
PROMPTS: dict[str, types.Prompt] = {
    "triage_ticket": types.Prompt(
        name="triage_ticket",
        description="Triage a ticket: priority, next status, assignee and first steps from the runbooks.",
        arguments=[_TICKET_ARG],
    ),
    "draft_reply": types.Prompt(
        name="draft_reply",
        description="Draft a reply to the requester of a ticket, grounded in the matching runbooks.",
        arguments=[
            _TICKET_ARG,
            types.PromptArgument(name="tone", description="friendly (default), formal or brief.", required=False),
        ],
    ),
    "summarize_ticket": types.Prompt(
        name="summarize_ticket",
        description="Summarize a ticket and its comments for a hand-over.",
        arguments=[_TICKET_ARG],
    ),
}
_TONES = ("friendly", "formal", "brief")
_ASKS = {
    "triage_ticket": (
        "Triage this ticket. Propose a priority (low, normal, high, urgent), the next status, who should own it, "
        "and the first diagnostic steps, citing the runbooks by path where they apply. Use the tools "
        "(update_ticket, transition_ticket, assign_ticket, comment_ticket) to record your decision."
    ),
    "draft_reply": (
        "Draft a {tone} reply to the requester of this ticket. Explain what we know, what they should try next "
        "(from the runbooks, in plain words) and when they will hear from us. Do not invent facts."
    ),
    "summarize_ticket": (
        "Summarize this ticket for a colleague taking it over: the problem, what was tried (from the comments), "
        "the current status and the open questions, in at most ten bullet points."
    ),
}


def render_ticket(ticket: Ticket) -> str:
    """The ticket as the model reads it."""
    lines = [
        f"Ticket {ticket.id}: {ticket.title}",
        f"Status: {ticket.status}; priority: {ticket.priority}; assignee: {ticket.assignee or 'unassigned'}",
        f"Tags: {', '.join(ticket.tags) or 'none'}",
        "",
        ticket.description,
    ]
    if ticket.comments:
        lines += ["", f"Comments ({ticket.comment_count}, oldest first):"]
        lines += [f"- {c.author} ({c.created_at}): {c.body}" for c in ticket.comments]
    return "\n".join(lines)


def render_runbooks(docs: list[DocSummary]) -> str:
    """The matching runbooks, by path, for the model to read with read_doc."""
    if not docs:
        return "No runbook in the knowledge base matches this ticket."
    lines = ["Runbooks that may apply (read them with read_doc):"]
    lines += [f"- {d.id}: {d.title}" + (f" ({d.snippet})" if d.snippet else "") for d in docs]
    return "\n".join(lines)


class ExtraPromptArgument(Protocol):
    """One argument of a test profile's prompt."""

    @property
    def name(self) -> str:
        """The argument's name."""
        ...

    @property
    def description(self) -> str:
        """What to pass."""
        ...

    @property
    def required(self) -> bool:
        """Whether it must be given."""
        ...


class ExtraPrompt(Protocol):
    """A prompt a test profile adds: `render(env, **arguments)` returns wire-shaped messages or asks for input."""

    @property
    def name(self) -> str:
        """The prompt's name."""
        ...

    @property
    def description(self) -> str:
        """What it is for."""
        ...

    @property
    def arguments(self) -> Sequence[ExtraPromptArgument]:
        """Its arguments."""
        ...

    @property
    def render(self) -> Callable[..., Awaitable[list[dict[str, Any]] | types.InputRequiredResult]]:
        """Build the messages."""
        ...


class Prompts:
    """Serves the prompts with the same scopes and redaction as the tools."""

    def __init__(
        self,
        *,
        storage: Storage,
        principal: Callable[[], Principal],
        redact: Callable[[str], str],
        extras: Sequence[ExtraPrompt] = (),
    ) -> None:
        self.storage = storage
        self.principal = principal
        self.redact = redact
        # A test profile's prompts (never the shipped server's), listed to everyone after ours.
        self._extras = {extra.name: extra for extra in extras}
        self._extra_prompts = [_describe(extra) for extra in extras]

    async def list_prompts(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        """All prompts need `tickets:read`; without it the list is empty."""
        visible = has_scope(self.principal(), PROMPT_SCOPE)
        return types.ListPromptsResult(prompts=[*(PROMPTS.values() if visible else ()), *self._extra_prompts])

    async def get_prompt(
        self, ctx: ServerRequestContext[Any], params: types.GetPromptRequestParams
    ) -> types.GetPromptResult | types.InputRequiredResult:
        """Build the prompt's messages from the live ticket and the runbooks that match it."""
        if params.name in self._extras:
            return await self._get_extra(ctx, params, self._extras[params.name])
        if params.name not in PROMPTS:
            raise MCPError(code=types.INVALID_PARAMS, message=f"unknown prompt; use one of {', '.join(PROMPTS)}")
        principal = self.principal()
        try:
            require_scope(principal, PROMPT_SCOPE, "prompts")
        except AppError as exc:
            raise MCPError(code=types.INVALID_PARAMS, message=f"{exc.code}: {exc.public}") from None
        args = params.arguments or {}
        ticket_id, tone = args.get("ticket_id", ""), args.get("tone") or "friendly"
        if not ticket_id:
            raise MCPError(code=types.INVALID_PARAMS, message="missing required argument 'ticket_id'")
        if tone not in _TONES:
            raise MCPError(code=types.INVALID_PARAMS, message=f"tone must be one of {', '.join(_TONES)}")
        try:
            ticket = await self.storage.get_ticket(ticket_id)
            runbooks = await self._runbooks(principal, ticket)
        except AppError as exc:
            raise MCPError(code=types.INVALID_PARAMS, message=self.redact(f"{exc.code}: {exc.public}")) from None
        text = "\n\n".join([_ASKS[params.name].format(tone=tone), render_ticket(ticket), render_runbooks(runbooks)])
        message = types.PromptMessage(role="user", content=types.TextContent(type="text", text=self.redact(text)))
        return types.GetPromptResult(description=PROMPTS[params.name].description, messages=[message])

    async def _get_extra(
        self, ctx: ServerRequestContext[Any], params: types.GetPromptRequestParams, extra: ExtraPrompt
    ) -> types.GetPromptResult | types.InputRequiredResult:
        args = params.arguments or {}
        for argument in extra.arguments:
            if argument.required and argument.name not in args:
                raise MCPError(code=types.INVALID_PARAMS, message=f"missing required argument {argument.name!r}")
        values = {a.name: args[a.name] for a in extra.arguments if a.name in args}
        rendered = await extra.render(RequestEnv(client=SdkChannel(ctx, params)), **values)
        if isinstance(rendered, types.InputRequiredResult):
            return rendered
        messages = [types.PromptMessage.model_validate(_redact_texts(m, self.redact)) for m in rendered]
        return types.GetPromptResult(description=extra.description, messages=messages)

    async def _runbooks(self, principal: Principal, ticket: Ticket) -> list[DocSummary]:
        if not has_scope(principal, "docs:read"):
            return []
        words = " ".join(w for w in ticket.title.split() if len(w) > 3)[:400]
        if not words:
            return []
        try:
            page = await self.storage.search_docs(words, cursor=None, limit=RUNBOOKS_SHOWN, any_word=True)
        except AppError:
            return []
        return page.items


def _describe(extra: ExtraPrompt) -> types.Prompt:
    arguments = [
        types.PromptArgument(name=a.name, description=a.description, required=a.required) for a in extra.arguments
    ]
    return types.Prompt(name=extra.name, description=extra.description, arguments=arguments)


def _redact_texts(value: Any, redact: Callable[[str], str]) -> Any:
    """A copy of wire-shaped content with every `text` field redacted (binary data is left alone)."""
    if isinstance(value, dict):
        return {
            k: redact(v) if k == "text" and isinstance(v, str) else _redact_texts(v, redact) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact_texts(item, redact) for item in value]
    return value
