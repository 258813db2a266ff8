"""Composition root: the only place concrete classes are chosen and the guard order is written down."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.lowlevel.server import Server
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler
from mcp.shared.exceptions import MCPDeprecationWarning

from server import knowledge
from server.config import Settings
from server.domain.principal import ALL_SCOPES, Principal
from server.errors import PermissionDenied
from server.policy.pipeline import Guard, Next, ToolCall, ToolSpec, build_chain
from server.policy.validation import InputLimits, Validate
from server.prompts import Prompts
from server.registry import ToolRegistry
from server.resources import Resources
from server.storage.sqlite import SqliteStorage
from server.tools import docs, notes, tickets
from server.tools.env import ToolEnv

log = structlog.get_logger()
Transport = Literal["stdio", "http", "memory"]
VERSION = "0.1.0"
INSTRUCTIONS = (
    "mcp-desk is a support desk: private notes, a shared ticket queue and a knowledge base of runbooks. "
    "Search before creating; pass back ids and cursors exactly as received; use expected_version on updates."
)


def core_tools() -> list[ToolSpec]:
    """Every shipped tool, in the order clients see them."""
    return [*notes.TOOLS, *tickets.TOOLS, *docs.TOOLS]


@dataclass(frozen=True, kw_only=True)
class App:
    """A fully wired server; `lifespan()` opens what it needs, nothing runs before."""

    settings: Settings
    transport: Transport
    server: Server[Any]
    storage: SqliteStorage
    registry: ToolRegistry
    resources: Resources
    extra_cleanup: list[Callable[[], Any]] = field(default_factory=list)

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        """Open storage and index the knowledge base; close everything in reverse order."""
        async with AsyncExitStack() as stack:
            self.settings.export_path.mkdir(parents=True, exist_ok=True)
            await stack.enter_async_context(self.storage.open())
            await self.storage.index_docs(knowledge.scan_docs(self.settings.docs_path))
            yield


def input_limits(settings: Settings) -> InputLimits:
    """The configured input limits."""
    return InputLimits(
        title_chars=settings.max_title_chars,
        body_bytes=settings.max_body_bytes,
        comment_bytes=settings.max_comment_bytes,
        tags=settings.max_tags,
        tag_chars=settings.max_tag_chars,
        page_limit=settings.max_page_limit,
        query_chars=settings.max_query_chars,
    )


async def authorize(call: ToolCall, call_next: Next) -> Any:
    """The tool's scope must be among the principal's scopes."""
    if call.spec.scope is not None and not call.principal.has(call.spec.scope):
        raise PermissionDenied(f"{call.spec.name} needs scope {call.spec.scope!r}")
    return await call_next(call)


def create_app(settings: Settings, *, transport: Transport = "stdio", extra_tools: Sequence[ToolSpec] = ()) -> App:
    """Build the server for one transport. Starts nothing; call `lifespan()` to open storage."""
    storage = SqliteStorage(settings.database_path)
    local = Principal(id=settings.stdio_principal, role=settings.stdio_role, scopes=ALL_SCOPES, transport="stdio")

    def principal() -> Principal:
        token = get_access_token()
        if token is None:
            return local
        return Principal(id=token.client_id, role="agent", scopes=frozenset(token.scopes), transport="http")

    redact: Callable[[str], str] = str
    bus = InMemorySubscriptionBus()
    resources = Resources(storage=storage, docs_root=settings.docs_path, principal=principal, redact=redact, bus=bus)

    def env_for(call: ToolCall) -> ToolEnv:
        return ToolEnv(
            principal=call.principal,
            storage=storage,
            docs_root=settings.docs_path,
            export_root=settings.export_path,
            resource_changed=resources.changed,
            redact=redact,
        )

    async def endpoint(call: ToolCall) -> dict[str, Any]:
        result = await call.spec.fn(env_for(call), **call.arguments)
        structured: dict[str, Any] = result.model_dump(mode="json")
        return structured

    guards: list[Guard] = [
        authorize,
        Validate(input_limits(settings)),
    ]
    specs = [*core_tools(), *extra_tools]
    registry = ToolRegistry(
        specs=specs,
        chain=build_chain(guards, endpoint),
        principal=principal,
        scope_of=lambda spec: spec.scope,
        redact=redact,
        transport=transport,
    )
    prompts = Prompts(storage=storage, principal=principal, redact=redact)
    server = _server(settings, registry, resources, prompts, bus)
    return App(
        settings=settings,
        transport=transport,
        server=server,
        storage=storage,
        registry=registry,
        resources=resources,
    )


def _server(
    settings: Settings, registry: ToolRegistry, resources: Resources, prompts: Prompts, bus: InMemorySubscriptionBus
) -> Server[Any]:
    with warnings.catch_warnings():
        # logging/setLevel is deprecated for the 2026-07-28 era but still part of the handshake era we serve.
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        return Server(
            "mcp-desk",
            version=VERSION,
            title="mcp-desk",
            instructions=INSTRUCTIONS,
            get_tool_input_schema=registry.input_schema,
            on_list_tools=registry.list_tools,
            on_call_tool=registry.call_tool,
            on_list_resources=resources.list_resources,
            on_list_resource_templates=resources.list_templates,
            on_read_resource=resources.read_resource,
            on_subscribe_resource=resources.subscribe,
            on_unsubscribe_resource=resources.unsubscribe,
            on_subscriptions_listen=ListenHandler(bus),
            on_list_prompts=prompts.list_prompts,
            on_get_prompt=prompts.get_prompt,
            on_completion=resources.complete,
            on_set_logging_level=registry.set_log_level,
        )
