"""Prompts `triage_ticket`, `draft_reply`, `summarize_ticket`: the ticket plus the runbooks that match it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError

from server.domain.models import DocSummary, Ticket
from server.domain.principal import Principal
from server.errors import AppError
from server.storage.base import Storage

RUNBOOKS_SHOWN = 3

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


class Prompts:
    """Serves the prompts with the same scopes and redaction as the tools."""

    def __init__(self, *, storage: Storage, principal: Callable[[], Principal], redact: Callable[[str], str]) -> None:
        self.storage = storage
        self.principal = principal
        self.redact = redact

    async def list_prompts(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        """All prompts need `tickets:read`; without it the list is empty."""
        visible = self.principal().has("tickets:read")
        return types.ListPromptsResult(prompts=list(PROMPTS.values()) if visible else [])

    async def get_prompt(
        self, ctx: ServerRequestContext[Any], params: types.GetPromptRequestParams
    ) -> types.GetPromptResult:
        """Build the prompt's messages from the live ticket and the runbooks that match it."""
        if params.name not in PROMPTS:
            raise MCPError(code=types.INVALID_PARAMS, message=f"unknown prompt; use one of {', '.join(PROMPTS)}")
        principal = self.principal()
        if not principal.has("tickets:read"):
            raise MCPError(code=types.INVALID_PARAMS, message="permission_denied: prompts need scope 'tickets:read'")
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

    async def _runbooks(self, principal: Principal, ticket: Ticket) -> list[DocSummary]:
        if not principal.has("docs:read"):
            return []
        words = " ".join(w for w in ticket.title.split() if len(w) > 3)[:400]
        if not words:
            return []
        try:
            page = await self.storage.search_docs(words, cursor=None, limit=RUNBOOKS_SHOWN, any_word=True)
        except AppError:
            return []
        return page.items
