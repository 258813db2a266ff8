"""Resources `note://{note_id}`, `ticket://{ticket_id}`, `docs://{path}`, subscriptions and completions."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import orjson
import structlog
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.subscriptions import ListenHandler, ResourceUpdated, SubscriptionBus
from mcp.shared.exceptions import MCPError

from server import knowledge
from server.domain.models import STATUSES
from server.domain.principal import Principal
from server.errors import AppError
from server.registry import connection_of
from server.storage.base import NoteScope, Storage

log = structlog.get_logger()
MAX_COMPLETIONS = 100
MAX_SUBSCRIPTIONS_PER_SESSION = 256

TEMPLATES = [
    types.ResourceTemplate(
        name="note",
        uri_template="note://{note_id}",
        description="One of your notes as JSON.",
        mime_type="application/json",
    ),
    types.ResourceTemplate(
        name="ticket",
        uri_template="ticket://{ticket_id}",
        description="A ticket with its comments as JSON; subscribe to hear when it changes.",
        mime_type="application/json",
    ),
    types.ResourceTemplate(
        name="docs",
        uri_template="docs://{path}",
        description="A knowledge-base runbook (Markdown), by its path relative to the knowledge base.",
        mime_type="text/markdown",
    ),
]
_SCOPES = {"note": "notes:read", "ticket": "tickets:read", "docs": "docs:read"}


def _fail(message: str) -> MCPError:
    return MCPError(code=types.INVALID_PARAMS, message=message)


def parse_uri(uri: str) -> tuple[str, str]:
    """Split `kind://rest` for the three schemes we serve."""
    kind, sep, rest = uri.partition("://")
    if not sep or kind not in _SCOPES or not rest:
        raise _fail("unknown resource; use note://{note_id}, ticket://{ticket_id} or docs://{path}")
    return kind, rest


class Resources:
    """Reads, lists and completes resources for a principal, with the same scopes and redaction as tools."""

    def __init__(
        self,
        *,
        storage: Storage,
        docs_root: Path,
        principal: Callable[[], Principal],
        redact: Callable[[str], str],
        bus: SubscriptionBus,
        docs_blocked: tuple[str, ...],
    ) -> None:
        self.docs_blocked = docs_blocked
        self._listener = ListenHandler(bus)
        self.storage = storage
        self.docs_root = docs_root
        self.principal = principal
        self.redact = redact
        self.bus = bus
        # Keyed weakly by connection, so a closed session's subscriptions disappear with it.
        self._subscriptions: weakref.WeakKeyDictionary[Connection, set[str]] = weakref.WeakKeyDictionary()

    def _require(self, principal: Principal, kind: str) -> None:
        scope = _SCOPES[kind]
        if not principal.has(scope):
            raise _fail(f"permission_denied: reading {kind} resources needs scope {scope!r}")

    async def read(self, uri: str) -> tuple[str, str]:
        """(text, mime type) of a resource the caller may see; errors never reveal another owner's data."""
        principal = self.principal()
        kind, rest = parse_uri(uri)
        self._require(principal, kind)
        try:
            if kind == "note":
                scope = NoteScope(owner=principal.id, all_owners=principal.has("notes:read_all"))
                note = await self.storage.get_note(rest, scope)
                return orjson.dumps(note.model_dump(mode="json")).decode(), "application/json"
            if kind == "ticket":
                ticket = await self.storage.get_ticket(rest)
                return orjson.dumps(ticket.model_dump(mode="json")).decode(), "application/json"
            doc = await anyio.to_thread.run_sync(knowledge.read_doc, self.docs_root, rest, self.docs_blocked)
            return doc.content, "text/markdown"
        except AppError as exc:
            raise _fail(f"{exc.code}: {exc.public}") from None

    async def read_resource(
        self, ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        """`resources/read`, redacted on the way out."""
        text, mime = await self.read(str(params.uri))
        return types.ReadResourceResult(
            contents=[types.TextResourceContents(uri=params.uri, text=self.redact(text), mime_type=mime)]
        )

    async def list_resources(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        """Recent tickets, the caller's recent notes and every runbook the caller may read."""
        principal = self.principal()
        found: list[types.Resource] = []
        if principal.has("tickets:read"):
            page = await self.storage.list_tickets(status=None, priority=None, assignee=None, cursor=None, limit=50)
            found += [_resource(f"ticket://{t.id}", t.title, "application/json") for t in page.items]
        if principal.has("notes:read"):
            scope = NoteScope(owner=principal.id, all_owners=principal.has("notes:read_all"))
            notes = await self.storage.list_notes(scope, tag=None, cursor=None, limit=50)
            found += [_resource(f"note://{n.id}", n.title, "application/json") for n in notes.items]
        if principal.has("docs:read"):
            docs = await anyio.to_thread.run_sync(knowledge.list_doc_paths, self.docs_root)
            found += [_resource(f"docs://{path}", path, "text/markdown") for path in docs]
        return types.ListResourcesResult(resources=[r.model_copy(update={"name": self.redact(r.name)}) for r in found])

    async def list_templates(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        """The three URI templates."""
        return types.ListResourceTemplatesResult(resource_templates=TEMPLATES)

    # --- subscriptions ---------------------------------------------------------------------------

    async def subscribe(
        self, ctx: ServerRequestContext[Any], params: types.SubscribeRequestParams
    ) -> types.EmptyResult:
        """Handshake-era `resources/subscribe` for `ticket://{id}` (the caller must be able to read it)."""
        uri = str(params.uri)
        kind, _ = parse_uri(uri)
        if kind != "ticket":
            raise _fail("only ticket://{ticket_id} resources can be subscribed to")
        await self.read(uri)
        uris = self._subscriptions.setdefault(connection_of(ctx), set())
        if len(uris) >= MAX_SUBSCRIPTIONS_PER_SESSION and uri not in uris:
            raise _fail(f"at most {MAX_SUBSCRIPTIONS_PER_SESSION} subscriptions per session; unsubscribe first")
        uris.add(uri)
        return types.EmptyResult()

    async def unsubscribe(
        self, ctx: ServerRequestContext[Any], params: types.UnsubscribeRequestParams
    ) -> types.EmptyResult:
        """Handshake-era `resources/unsubscribe`; unknown subscriptions are ignored."""
        self._subscriptions.get(connection_of(ctx), set()).discard(str(params.uri))
        return types.EmptyResult()

    async def listen(
        self, ctx: ServerRequestContext[Any], params: types.SubscriptionsListenRequestParams
    ) -> types.SubscriptionsListenResult:
        """2026-07-28 `subscriptions/listen`: resource subscriptions need the same scope as reading them."""
        for uri in params.notifications.resource_subscriptions or ():
            kind, _ = parse_uri(uri)
            self._require(self.principal(), kind)
        return await self._listener(ctx, params)

    async def changed(self, uri: str) -> None:
        """Tell subscribers (both protocol eras) that a resource changed; a gone subscriber is skipped."""
        await self.bus.publish(ResourceUpdated(uri=uri))
        for connection, uris in list(self._subscriptions.items()):
            if uri not in uris:
                continue
            try:
                await connection.outbound.notify("notifications/resources/updated", {"uri": uri})
            except Exception as exc:  # a closed connection must not fail the write that changed it
                log.debug("subscriber_dropped", reason=type(exc).__name__)
                uris.discard(uri)

    # --- completions -----------------------------------------------------------------------------

    async def complete(
        self, ctx: ServerRequestContext[Any], params: types.CompleteRequestParams
    ) -> types.CompleteResult:
        """Completions for ticket ids, statuses, note ids and doc paths."""
        principal = self.principal()
        name, prefix = params.argument.name, params.argument.value
        values: list[str] = []
        if name == "status":
            values = [s for s in STATUSES if s.startswith(prefix)]
        elif name == "ticket_id" and principal.has("tickets:read"):
            values = await self.storage.ticket_ids(prefix, MAX_COMPLETIONS)
        elif name == "note_id" and principal.has("notes:read"):
            scope = NoteScope(owner=principal.id, all_owners=principal.has("notes:read_all"))
            page = await self.storage.list_notes(scope, tag=None, cursor=None, limit=MAX_COMPLETIONS)
            values = [n.id for n in page.items if n.id.startswith(prefix)]
        elif name == "path" and principal.has("docs:read"):
            paths = await anyio.to_thread.run_sync(knowledge.list_doc_paths, self.docs_root)
            values = [p for p in paths if p.startswith(prefix)]
        return types.CompleteResult(
            completion=types.Completion(values=values[:MAX_COMPLETIONS], total=len(values), has_more=False)
        )


def _resource(uri: str, name: str, mime: str) -> types.Resource:
    return types.Resource(uri=uri, name=name, mime_type=mime)
