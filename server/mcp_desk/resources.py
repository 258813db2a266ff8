"""Resources as specs (the shipped `note://{note_id}`, `ticket://{ticket_id}`, `docs://{path}`), subscriptions
and completions."""

from __future__ import annotations

import base64
import re
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
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

from mcp_desk import knowledge
from mcp_desk.domain.models import SLA_STATES, STATUSES
from mcp_desk.domain.principal import Principal
from mcp_desk.errors import AppError, NotFound, quote
from mcp_desk.policy.permissions import has_scope, note_read_scope, require_scope
from mcp_desk.policy.pipeline import ClientChannel
from mcp_desk.policy.redaction import Redactor
from mcp_desk.registry import SdkChannel, protocol_error
from mcp_desk.sdk import connection_of
from mcp_desk.storage.base import Storage
from mcp_desk.tools.env import ToolEnv

log = structlog.get_logger()
MAX_COMPLETIONS = 100
MAX_SUBSCRIPTIONS_PER_SESSION = 256

_SCOPES = {"note": "notes:read", "ticket": "tickets:read", "docs": "docs:read"}
EnvFactory = Callable[[Principal, ClientChannel], ToolEnv]
Content = str | bytes | Mapping[str, Any]


def _fail(message: str) -> MCPError:
    """A refusal whose message quotes nothing the client sent (so there is nothing to redact)."""
    return protocol_error(message, str)


@dataclass(frozen=True, kw_only=True, slots=True)
class ResourceSpec:
    """A resource as data: a fixed URI, or a template when `uri` holds `{placeholders}`.

    `read(env, **placeholders)` returns text, bytes (sent as a blob) or a JSON-able mapping (sent as JSON).
    A resource with a `scope` is readable, listable and subscribable only by callers holding it.
    """

    uri: str
    name: str
    description: str
    mime_type: str
    read: Callable[..., Awaitable[Content]]
    scope: str | None = None

    @property
    def is_template(self) -> bool:
        """True when `uri` is a URI template."""
        return "{" in self.uri


MAX_ID_CHARS = 64  # as the tools' note_id / ticket_id arguments


def _known_id(kind: str, value: str) -> str:
    """`value`, unless it is longer than any id we mint: then not found, quoting at most 100 characters of it."""
    if len(value) > MAX_ID_CHARS:
        raise NotFound(f"{kind} {quote(value)} not found")
    return value


async def read_note(env: ToolEnv, note_id: str) -> Content:
    """A note of the caller's (or any, with `notes:read_all`) as JSON."""
    note = await env.storage.get_note(_known_id("note", note_id), env.note_scope)
    return note.model_dump(mode="json")


async def read_ticket(env: ToolEnv, ticket_id: str) -> Content:
    """A ticket with its comments as JSON."""
    ticket = await env.storage.get_ticket(_known_id("ticket", ticket_id))
    return ticket.model_dump(mode="json")


async def read_runbook(env: ToolEnv, path: str) -> Content:
    """A knowledge-base runbook's Markdown."""
    doc = await anyio.to_thread.run_sync(knowledge.read_doc, env.docs_root, path, env.docs_blocked)
    return doc.content


SHIPPED_RESOURCES: tuple[ResourceSpec, ...] = (
    ResourceSpec(
        uri="note://{note_id}",
        name="note",
        description="One of your notes as JSON.",
        mime_type="application/json",
        read=read_note,
        scope=_SCOPES["note"],
    ),
    ResourceSpec(
        uri="ticket://{ticket_id}",
        name="ticket",
        description="A ticket with its comments as JSON; subscribe to hear when it changes.",
        mime_type="application/json",
        read=read_ticket,
        scope=_SCOPES["ticket"],
    ),
    ResourceSpec(
        uri="docs://{path}",
        name="docs",
        description="A knowledge-base runbook (Markdown), by its path relative to the knowledge base.",
        mime_type="text/markdown",
        read=read_runbook,
        scope=_SCOPES["docs"],
    ),
)


def template_pattern(template: str) -> re.Pattern[str]:
    """A URI template as a regex whose named groups are its placeholders.

    A placeholder matches one path segment (`test://template/{id}/data`), except a trailing one, which
    takes the rest of the URI (`docs://{path}` serves nested paths).
    """
    pieces = re.split(r"\{(\w+)\}", template)
    last = len(pieces) - 2 if pieces[-1] == "" else -1
    return re.compile(
        "".join(
            re.escape(p) if i % 2 == 0 else f"(?P<{p}>{'.+' if i == last else '[^/]+'})" for i, p in enumerate(pieces)
        ),
        re.DOTALL,
    )


def well_formed(uri: str) -> str:
    """The scheme of an absolute `scheme://rest` URI; anything else is an invalid-params error."""
    kind, sep, rest = uri.partition("://")
    if not sep or not kind or not rest:
        raise _fail("not a resource URI; expected scheme://...")
    return kind


class Subscriptions:
    """Who listens to which resource URI, per connection (handshake era) and on the bus (2026-07-28 era)."""

    def __init__(self, bus: SubscriptionBus) -> None:
        self.bus = bus
        self.listener = ListenHandler(bus)
        # Keyed weakly by connection, so a closed session's subscriptions disappear with it.
        self._by_connection: weakref.WeakKeyDictionary[Connection, set[str]] = weakref.WeakKeyDictionary()

    def of(self, connection: Connection) -> set[str]:
        """The URIs `connection` subscribed to (a live set)."""
        return self._by_connection.setdefault(connection, set())

    async def changed(self, uri: str) -> None:
        """Tell subscribers (both protocol eras) that a resource changed; a gone subscriber is skipped."""
        await self.bus.publish(ResourceUpdated(uri=uri))
        await self.notify_sessions(uri)

    async def notify_sessions(self, uri: str) -> None:
        """Send `notifications/resources/updated` to this replica's handshake-era sessions subscribed to `uri`.

        `changed` calls it for changes made here; a shared bus calls it for changes made through other replicas.
        """
        for connection, uris in list(self._by_connection.items()):
            if uri not in uris:
                continue
            try:
                await connection.outbound.notify("notifications/resources/updated", {"uri": uri})
            except Exception as exc:  # a closed connection must not fail the write that changed it
                log.debug("subscriber_dropped", reason=type(exc).__name__)
                uris.discard(uri)


class Resources:
    """Reads, lists and completes resources for a principal, with the same scopes and redaction as tools."""

    def __init__(
        self,
        *,
        specs: Sequence[ResourceSpec],
        storage: Storage,
        docs_root: Path,
        docs_blocked: Sequence[str],
        principal: Callable[[], Principal],
        env: EnvFactory,
        redactor: Redactor,
        subscriptions: Subscriptions,
        macro_names: Sequence[str] = (),
    ) -> None:
        self._fixed = {spec.uri: spec for spec in specs if not spec.is_template}
        self._templates = [(template_pattern(spec.uri), spec) for spec in specs if spec.is_template]
        self.storage = storage
        self.docs_root = docs_root
        self.docs_blocked = docs_blocked
        self.principal = principal
        self.env = env
        self.redact = redactor.text
        self.redactor = redactor
        self.subscriptions = subscriptions
        self.macro_names = sorted(macro_names)

    def _require(self, principal: Principal, spec: ResourceSpec) -> None:
        try:
            require_scope(principal, spec.scope, f"reading {spec.name} resources")
        except AppError as exc:
            raise _fail(f"{exc.code}: {exc.public}") from None

    def _spec_for(self, uri: str) -> tuple[ResourceSpec, dict[str, str]] | None:
        if uri in self._fixed:
            return self._fixed[uri], {}
        for pattern, spec in self._templates:
            if match := pattern.fullmatch(uri):
                return spec, match.groupdict()
        return None

    def _match(self, uri: str) -> tuple[ResourceSpec, dict[str, str]]:
        served = self._spec_for(uri)
        if served is None:
            known = [spec.uri for _, spec in self._templates] + list(self._fixed)
            raise _fail(f"unknown resource; use {', '.join(known[:-1])} or {known[-1]}" if known else "no resources")
        return served

    async def read(self, ctx: ServerRequestContext[Any], uri: str, params: Any = None) -> types.ReadResourceResult:
        """A resource the caller may see, redacted; errors never reveal another owner's data."""
        principal = self.principal()
        spec, values = self._match(uri)
        self._require(principal, spec)
        try:
            content = await spec.read(self.env(principal, SdkChannel(ctx, params)), **values)
        except AppError as exc:
            raise protocol_error(exc, self.redact) from None
        return types.ReadResourceResult(contents=[self._contents(uri, spec.mime_type, content)])

    def _contents(
        self, uri: str, mime: str, content: Content
    ) -> types.TextResourceContents | types.BlobResourceContents:
        if isinstance(content, bytes):
            return types.BlobResourceContents(uri=uri, blob=base64.b64encode(content).decode(), mime_type=mime)
        if not isinstance(content, str):
            # Strings are redacted before JSON encoding: escapes such as `\n` would hide a secret's word boundary.
            content = orjson.dumps(self.redactor.value(dict(content))).decode()
        return types.TextResourceContents(uri=uri, text=self.redact(content), mime_type=mime)

    async def read_resource(
        self, ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        """`resources/read`, redacted on the way out."""
        return await self.read(ctx, str(params.uri), params)

    async def list_resources(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        """Recent tickets, the caller's recent notes and every runbook the caller may read."""
        principal = self.principal()
        found: list[types.Resource] = []
        if has_scope(principal, _SCOPES["ticket"]):
            page = await self.storage.list_tickets(status=None, priority=None, assignee=None, cursor=None, limit=50)
            found += [_resource(f"ticket://{t.id}", t.title, "application/json") for t in page.items]
        if has_scope(principal, _SCOPES["note"]):
            notes = await self.storage.list_notes(note_read_scope(principal), tag=None, cursor=None, limit=50)
            found += [_resource(f"note://{n.id}", n.title, "application/json") for n in notes.items]
        if has_scope(principal, _SCOPES["docs"]):
            docs = await anyio.to_thread.run_sync(knowledge.list_doc_paths, self.docs_root, self.docs_blocked)
            found += [_resource(f"docs://{path}", path, "text/markdown") for path in docs]
        found += [
            _resource(e.uri, e.name, e.mime_type, e.description)
            for e in self._fixed.values()
            if has_scope(principal, e.scope)
        ]
        return types.ListResourcesResult(resources=[r.model_copy(update={"name": self.redact(r.name)}) for r in found])

    async def list_templates(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        """Every URI template served."""
        templates = [
            types.ResourceTemplate(name=e.name, uri_template=e.uri, description=e.description, mime_type=e.mime_type)
            for _, e in self._templates
        ]
        return types.ListResourceTemplatesResult(resource_templates=templates)

    # --- subscriptions ---------------------------------------------------------------------------

    async def subscribe(
        self, ctx: ServerRequestContext[Any], params: types.SubscribeRequestParams
    ) -> types.EmptyResult:
        """Handshake-era `resources/subscribe` for any well-formed URI; only `ticket://{id}` ever notifies.

        Our own schemes need the scope that reading them needs, and a ticket must be one the caller can read.
        """
        uri = str(params.uri)
        if self._subscribable(uri) == "ticket":
            await self.read(ctx, uri)
        uris = self.subscriptions.of(connection_of(ctx))
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
        self.subscriptions.of(connection_of(ctx)).discard(uri)
        return types.EmptyResult()

    async def listen(
        self, ctx: ServerRequestContext[Any], params: types.SubscriptionsListenRequestParams
    ) -> types.SubscriptionsListenResult:
        """2026-07-28 `subscriptions/listen`: resource subscriptions need the same scope as reading them."""
        for uri in params.notifications.resource_subscriptions or ():
            self._subscribable(uri)
        return await self.subscriptions.listener(ctx, params)

    def _subscribable(self, uri: str) -> str:
        """The URI's scheme, once it is well formed and, for a resource we serve, readable by the caller."""
        kind = well_formed(uri)
        served = self._spec_for(uri)
        if served is not None:
            self._require(self.principal(), served[0])
        return kind

    # --- completions -----------------------------------------------------------------------------

    async def complete(
        self, ctx: ServerRequestContext[Any], params: types.CompleteRequestParams
    ) -> types.CompleteResult:
        """Completions for ticket ids, statuses, SLA states, macro names, note ids and doc paths the caller can read."""
        name, prefix = params.argument.name, params.argument.value
        values = [value for value in await self._candidates(name, prefix) if value.startswith(prefix)]
        return types.CompleteResult(
            completion=types.Completion(values=values[:MAX_COMPLETIONS], total=len(values), has_more=False)
        )

    async def _candidates(self, name: str, prefix: str) -> list[str]:
        """What the caller may read for an argument, by the same permission and path checks as a read."""
        principal = self.principal()
        if name == "status":
            return list(STATUSES)
        if name == "sla_state":
            return list(SLA_STATES)
        if name == "macro" and has_scope(principal, _SCOPES["ticket"]):
            return list(self.macro_names)
        if name == "ticket_id" and has_scope(principal, _SCOPES["ticket"]):
            return await self.storage.ticket_ids(prefix, MAX_COMPLETIONS)
        if name == "note_id" and has_scope(principal, _SCOPES["note"]):
            page = await self.storage.list_notes(
                note_read_scope(principal), tag=None, cursor=None, limit=MAX_COMPLETIONS
            )
            return [note.id for note in page.items]
        if name == "path" and has_scope(principal, _SCOPES["docs"]):
            return await anyio.to_thread.run_sync(knowledge.list_doc_paths, self.docs_root, self.docs_blocked)
        return []


def _resource(uri: str, name: str, mime: str, description: str | None = None) -> types.Resource:
    return types.Resource(uri=uri, name=name, mime_type=mime, description=description)
