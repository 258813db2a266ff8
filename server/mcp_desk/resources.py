"""Resources `note://{note_id}`, `ticket://{ticket_id}`, `docs://{path}`, subscriptions and completions."""

from __future__ import annotations

import base64
import re
import weakref
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import anyio
import mcp_types as types
import orjson
import structlog
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.subscriptions import ListenHandler, ResourceUpdated, SubscriptionBus
from mcp.shared.exceptions import MCPError

from mcp_desk import knowledge
from mcp_desk.domain.models import STATUSES
from mcp_desk.domain.principal import Principal
from mcp_desk.errors import AppError
from mcp_desk.policy.redaction import Redactor
from mcp_desk.registry import RequestEnv, SdkChannel, connection_of
from mcp_desk.storage.base import NoteScope, Storage

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


class ExtraResource(Protocol):
    """A resource a test profile adds: a fixed URI, or a template when `uri` holds `{placeholders}`."""

    @property
    def uri(self) -> str:
        """The URI, or the URI template."""
        ...

    @property
    def name(self) -> str:
        """Its name in listings."""
        ...

    @property
    def description(self) -> str:
        """What it holds."""
        ...

    @property
    def mime_type(self) -> str:
        """The content's MIME type."""
        ...

    @property
    def read(self) -> Callable[..., Awaitable[str | bytes]]:
        """`read(env, **template_values)`: the content, text or bytes."""
        ...


def template_pattern(template: str) -> re.Pattern[str]:
    """A URI template (`test://template/{id}/data`) as a regex whose named groups are its placeholders."""
    pieces = re.split(r"\{(\w+)\}", template)
    return re.compile("".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+)" for i, p in enumerate(pieces)))


def well_formed(uri: str) -> str:
    """The scheme of an absolute `scheme://rest` URI; anything else is an invalid-params error."""
    kind, sep, rest = uri.partition("://")
    if not sep or not kind or not rest:
        raise _fail("not a resource URI; expected scheme://...")
    return kind


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
        redactor: Redactor,
        bus: SubscriptionBus,
        docs_blocked: tuple[str, ...],
        extras: Sequence[ExtraResource] = (),
    ) -> None:
        self.docs_blocked = docs_blocked
        # A test profile's resources (never the shipped server's): fixed URIs, then templates.
        self._fixed = {extra.uri: extra for extra in extras if "{" not in extra.uri}
        self._templates = [(template_pattern(extra.uri), extra) for extra in extras if "{" in extra.uri]
        self._listener = ListenHandler(bus)
        self.storage = storage
        self.docs_root = docs_root
        self.principal = principal
        self.redact = redactor.text
        self.redactor = redactor
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
                return self._json(note.model_dump(mode="json")), "application/json"
            if kind == "ticket":
                ticket = await self.storage.get_ticket(rest)
                return self._json(ticket.model_dump(mode="json")), "application/json"
            doc = await anyio.to_thread.run_sync(knowledge.read_doc, self.docs_root, rest, self.docs_blocked)
            return doc.content, "text/markdown"
        except AppError as exc:
            raise _fail(self.redact(f"{exc.code}: {exc.public}")) from None

    def _json(self, data: dict[str, Any]) -> str:
        # Strings are redacted before JSON encoding: escapes such as `\n` would hide a secret's word boundary.
        return orjson.dumps(self.redactor.value(data)).decode()

    async def read_resource(
        self, ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        """`resources/read`, redacted on the way out."""
        extra = self._extra(str(params.uri))
        if extra is not None:
            return await self._read_extra(ctx, params, *extra)
        text, mime = await self.read(str(params.uri))
        return types.ReadResourceResult(
            contents=[types.TextResourceContents(uri=params.uri, text=self.redact(text), mime_type=mime)]
        )

    def _extra(self, uri: str) -> tuple[ExtraResource, dict[str, str]] | None:
        if uri in self._fixed:
            return self._fixed[uri], {}
        for pattern, extra in self._templates:
            if match := pattern.fullmatch(uri):
                return extra, match.groupdict()
        return None

    async def _read_extra(
        self,
        ctx: ServerRequestContext[Any],
        params: types.ReadResourceRequestParams,
        extra: ExtraResource,
        values: dict[str, str],
    ) -> types.ReadResourceResult:
        content = await extra.read(RequestEnv(client=SdkChannel(ctx, params)), **values)
        contents: types.TextResourceContents | types.BlobResourceContents
        if isinstance(content, bytes):
            blob = base64.b64encode(content).decode()
            contents = types.BlobResourceContents(uri=params.uri, blob=blob, mime_type=extra.mime_type)
        else:
            contents = types.TextResourceContents(uri=params.uri, text=self.redact(content), mime_type=extra.mime_type)
        return types.ReadResourceResult(contents=[contents])

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
        found += [_resource(e.uri, e.name, e.mime_type, e.description) for e in self._fixed.values()]
        return types.ListResourcesResult(resources=[r.model_copy(update={"name": self.redact(r.name)}) for r in found])

    async def list_templates(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        """The three URI templates (and a test profile's)."""
        extras = [
            types.ResourceTemplate(name=e.name, uri_template=e.uri, description=e.description, mime_type=e.mime_type)
            for _, e in self._templates
        ]
        return types.ListResourceTemplatesResult(resource_templates=[*TEMPLATES, *extras])

    # --- subscriptions ---------------------------------------------------------------------------

    async def subscribe(
        self, ctx: ServerRequestContext[Any], params: types.SubscribeRequestParams
    ) -> types.EmptyResult:
        """Handshake-era `resources/subscribe` for any well-formed URI; only `ticket://{id}` ever notifies.

        Our own schemes need the scope that reading them needs, and a ticket must be one the caller can read.
        """
        uri = str(params.uri)
        if self._subscribable(uri) == "ticket":
            await self.read(uri)
        uris = self._subscriptions.setdefault(connection_of(ctx), set())
        if len(uris) >= MAX_SUBSCRIPTIONS_PER_SESSION and uri not in uris:
            raise _fail(f"at most {MAX_SUBSCRIPTIONS_PER_SESSION} subscriptions per session; unsubscribe first")
        uris.add(uri)
        return types.EmptyResult()

    async def unsubscribe(
        self, ctx: ServerRequestContext[Any], params: types.UnsubscribeRequestParams
    ) -> types.EmptyResult:
        """Handshake-era `resources/unsubscribe` for any well-formed URI; unknown subscriptions are ignored."""
        uri = str(params.uri)
        well_formed(uri)
        self._subscriptions.get(connection_of(ctx), set()).discard(uri)
        return types.EmptyResult()

    async def listen(
        self, ctx: ServerRequestContext[Any], params: types.SubscriptionsListenRequestParams
    ) -> types.SubscriptionsListenResult:
        """2026-07-28 `subscriptions/listen`: resource subscriptions need the same scope as reading them."""
        for uri in params.notifications.resource_subscriptions or ():
            self._subscribable(uri)
        return await self._listener(ctx, params)

    def _subscribable(self, uri: str) -> str:
        """The URI's scheme, once it is well formed and, for our own schemes, readable by the caller."""
        kind = well_formed(uri)
        if kind in _SCOPES:
            self._require(self.principal(), kind)
        return kind

    async def changed(self, uri: str) -> None:
        """Tell subscribers (both protocol eras) that a resource changed; a gone subscriber is skipped."""
        await self.bus.publish(ResourceUpdated(uri=uri))
        await self.notify_sessions(uri)

    async def notify_sessions(self, uri: str) -> None:
        """Send `notifications/resources/updated` to this replica's handshake-era sessions subscribed to `uri`.

        `changed` calls it for changes made here; a shared bus calls it for changes made through other replicas.
        """
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


def _resource(uri: str, name: str, mime: str, description: str | None = None) -> types.Resource:
    return types.Resource(uri=uri, name=name, mime_type=mime, description=description)
