"""Composition root: the only place concrete classes are chosen and the guard order is written down."""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import anyio
import structlog
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.lowlevel.server import Server
from mcp.server.request_state import RequestStateBoundary, RequestStateSecurity
from mcp.server.subscriptions import InMemorySubscriptionBus
from mcp.shared.exceptions import MCPDeprecationWarning

from mcp_desk import knowledge
from mcp_desk.auth import HttpAuth, http_auth, principal_of
from mcp_desk.config import Settings
from mcp_desk.domain.principal import Principal
from mcp_desk.errors import PermissionDenied
from mcp_desk.health import (
    HealthCheck,
    audit_check,
    budget_check,
    rate_limiter_check,
    sandbox_check,
    storage_check,
)
from mcp_desk.lifecycle import Lifecycle
from mcp_desk.metrics import Metrics
from mcp_desk.policy.alerts import Alerter
from mcp_desk.policy.audit import Audit
from mcp_desk.policy.audit_log import JsonlAuditLog
from mcp_desk.policy.authorize import authorize
from mcp_desk.policy.budget import Budget
from mcp_desk.policy.keys import KeyStore
from mcp_desk.policy.observe import Observe
from mcp_desk.policy.paths import resolve_path
from mcp_desk.policy.pipeline import Guard, ToolCall, ToolSpec, build_chain
from mcp_desk.policy.ratelimit import RateLimit, load_counters, open_storage, save_counters
from mcp_desk.policy.redaction import Redact, Redactor
from mcp_desk.policy.rules import Policy
from mcp_desk.policy.tokens import OutputCap
from mcp_desk.policy.validation import InputLimits, Validate
from mcp_desk.prompts import Prompts
from mcp_desk.registry import CLIENT_KEY, MethodTimer, ToolRegistry, structured
from mcp_desk.resources import Resources
from mcp_desk.sandbox.isolation import IsolationConfig
from mcp_desk.sandbox.runner import CommandRunner
from mcp_desk.sandbox.templates import Allowlist, load_allowlist
from mcp_desk.storage.base import Pooled, Storage
from mcp_desk.storage.sqlite import SqliteStorage
from mcp_desk.tools import diagnostics, docs, notes, tickets, usage
from mcp_desk.tools.env import NO_CLIENT, ToolEnv

if TYPE_CHECKING:
    from mcp_desk.testing.conformance import Profile

log = structlog.get_logger()
Transport = Literal["stdio", "http", "memory"]
VERSION = "0.1.0"
INSTRUCTIONS = (
    "mcp-desk is a support desk: private notes, a shared ticket queue, a knowledge base of runbooks and "
    "read-only diagnostics. Search before creating; pass back ids and cursors exactly as received; use "
    "expected_version on updates; get_usage tells you your remaining rate limit and daily budget."
)


def shipped_tools(allowlist: Allowlist) -> list[ToolSpec]:
    """Every shipped tool, in the order clients see them."""
    run_diagnostic = ToolSpec(
        name="run_diagnostic",
        fn=diagnostics.run_diagnostic,
        scope="diagnostics:run",
        annotations=diagnostics.annotations_for(allowlist),
    )
    return [*notes.TOOLS, *tickets.TOOLS, *docs.TOOLS, run_diagnostic, *usage.TOOLS]


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


@dataclass(frozen=True, kw_only=True)
class App:
    """A fully wired server; `lifespan()` opens what it needs, nothing runs before."""

    settings: Settings
    transport: Transport
    server: Server[Any]
    policy: Policy
    storage: Storage
    registry: ToolRegistry
    resources: Resources
    metrics: Metrics
    lifecycle: Lifecycle
    audit_log: JsonlAuditLog
    audit: Audit
    alerter: Alerter
    limiter: RateLimit
    budget: Budget
    runner: CommandRunner
    auth: HttpAuth | None
    checks: list[HealthCheck]
    gauges: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    pool_state: Callable[[], Mapping[str, int]] | None = None

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        """Open storage, audit and alerting, index the runbooks, probe the sandbox; close in reverse order."""
        settings = self.settings
        async with AsyncExitStack() as stack:
            settings.export_path.mkdir(parents=True, exist_ok=True)
            await stack.enter_async_context(self.storage.open())
            docs = await anyio.to_thread.run_sync(knowledge.scan_docs, settings.docs_path, self.resources.docs_blocked)
            await self.storage.index_docs(docs)
            await self.audit_log.open()
            stack.push_async_callback(self.audit_log.close)
            await stack.enter_async_context(self.alerter.running())
            stack.push_async_callback(self._drain_alerts)
            state_file = settings.resolved_rate_limit_state_file
            load_counters(self.limiter.storage, state_file)
            stack.callback(save_counters, self.limiter.storage, state_file)
            await self.runner.probe()
            self.lifecycle.mark_ready()
            yield

    async def _drain_alerts(self) -> None:
        with anyio.move_on_after(2):
            await self.alerter.drain()

    async def auth_failed(self, reason: str) -> None:
        """An HTTP request was refused for its credentials: audit `auth_failed` and raise the alert (counted)."""
        await self.audit.auth_failed(reason=reason, transport=self.transport)

    async def refresh_gauges(self) -> None:
        """Gauges read at scrape time: tickets by status and the budget ratio."""
        self.metrics.set_tickets(await self.storage.ticket_counts())
        self.metrics.set_budget_ratio(self.budget.used_ratio())
        if self.pool_state is not None:
            self.metrics.set_db_pool(self.pool_state())


def create_app(
    settings: Settings,
    *,
    transport: Transport = "stdio",
    extra_tools: tuple[ToolSpec, ...] = (),
    profile: Profile | None = None,
) -> App:
    """Build the server for one transport. Starts nothing; call `lifespan()` to open storage and the rest.

    `profile` adds a test profile's tools, resources and prompts (server/mcp_desk/testing); only tests pass one.
    """
    policy = Policy.load(settings.policy_file)
    allowlist = load_allowlist(settings.policy_file, roots={"logs": settings.diagnostics_log_root})
    specs = [*shipped_tools(allowlist), *extra_tools, *(profile.tools if profile else ())]
    policy.check({s.name: s.scope for s in specs}, roles_in_use={"MCP_DESK_STDIO_ROLE": settings.stdio_role})
    specs = [dataclasses.replace(s, scope=policy.scope_for(s.name, s.scope)) for s in specs]
    key_store = KeyStore.load(settings.api_keys_file, roles=policy.role_names()) if settings.api_keys_file else None
    auth = http_auth(settings, key_store=key_store) if transport == "http" else None

    metrics = Metrics(version=VERSION, tools=[s.name for s in specs], diagnostics=allowlist.names())
    lifecycle = Lifecycle()
    redactor = Redactor()
    alerter = Alerter(
        on_alert=metrics.security_alert,
        webhook_url=settings.alert_webhook_url,
        burst_threshold=settings.alert_denial_burst,
        burst_window_seconds=settings.alert_denial_window_seconds,
    )
    hmac_key = settings.audit_hmac_key.get_secret_value().encode() if settings.audit_hmac_key else None
    audit_log = JsonlAuditLog(settings.resolved_audit_log_path, hmac_key=hmac_key, fsync=settings.audit_fsync)
    audit = Audit(sink=audit_log, redactor=redactor, alerter=alerter, on_event=metrics.audit_event)
    counters = open_storage(settings.rate_limit_storage_uri.get_secret_value())
    limiter = RateLimit(
        storage=counters,
        requests_per_minute=settings.rate_limit_rpm,
        tokens_per_minute=settings.rate_limit_tpm,
        per_tool={s.name: limit for s in specs if (limit := policy.rate_for(s.name)) is not None},
    )
    budget = Budget(
        storage=counters,
        price_per_mtok=settings.input_price_per_mtok,
        max_daily_tokens=settings.max_daily_tokens,
        max_daily_spend=settings.max_daily_spend,
        alert_threshold=settings.cost_alert_threshold,
        on_alert=lambda kind, who, ratio: alerter.alert(kind, principal=who, ratio=round(ratio, 3)),
        on_cost=metrics.context_cost,
        on_tokens=metrics.output_tokens,
    )
    runner = CommandRunner(
        allowlist,
        path_resolver=resolve_path,
        isolation=IsolationConfig(
            mode=settings.sandbox_mode,
            require_isolation=settings.sandbox_require_isolation,
            bwrap_path=settings.sandbox_bwrap_path,
            memory_bytes=settings.sandbox_memory_mb * 2**20,
            max_processes=settings.sandbox_max_processes,
        ),
        max_concurrent=settings.sandbox_max_concurrent,
        on_run=metrics.sandbox_run,
    )
    principal = principal_source(settings, policy, transport, authenticated=auth is not None)
    storage = build_storage(settings)
    resources = Resources(
        storage=storage,
        docs_root=settings.docs_path,
        principal=principal,
        redactor=redactor,
        bus=InMemorySubscriptionBus(),
        docs_blocked=policy.blocked_for("read_doc"),
        extras=profile.resources if profile else (),
    )

    docs_blocked, export_blocked = policy.blocked_for("read_doc"), policy.blocked_for("export_ticket")

    def env_for(call: ToolCall) -> ToolEnv:
        return ToolEnv(
            principal=call.principal,
            storage=storage,
            docs_root=settings.docs_path,
            export_root=settings.export_path,
            resource_changed=resources.changed,
            redact=redactor.text,
            docs_blocked=docs_blocked,
            export_blocked=export_blocked,
            runner=runner,
            limiter=limiter,
            budget=budget,
            client=call.state.get(CLIENT_KEY, NO_CLIENT),
        )

    async def endpoint(call: ToolCall) -> dict[str, Any]:
        return structured(call, await call.spec.fn(env_for(call), **call.arguments))

    # The order is the policy: outermost first. Redact scrubs results before OutputCap, Budget and the
    # limiter measure them and before Audit records anything; audit.intent writes ahead of state changes.
    guards: list[Guard] = [
        Observe(recorder=metrics, lifecycle=lifecycle),
        audit,
        limiter,
        budget,
        OutputCap(max_tokens=settings.max_output_tokens),
        authorize,
        Validate(input_limits(settings)),
        audit.intent,
        Redact(redactor),
    ]
    registry = ToolRegistry(
        specs=specs,
        chain=build_chain(guards, endpoint),
        principal=principal,
        redact=redactor.text,
        transport=transport,
    )
    prompts = Prompts(
        storage=storage, principal=principal, redact=redactor.text, extras=profile.prompts if profile else ()
    )
    server = _server(registry, resources, prompts)
    # Seals the requestState of multi-round (2026-07-28) results and verifies it when a client echoes it back.
    server.middleware.append(RequestStateBoundary(RequestStateSecurity.ephemeral(), default_audience="mcp-desk"))
    server.middleware.append(MethodTimer(metrics, transport))

    def budget_ratio() -> float | None:
        limited = settings.max_daily_tokens is not None or settings.max_daily_spend is not None
        return budget.used_ratio() if limited else None

    checks = [
        storage_check(storage.probe),
        audit_check(audit_log.writable),
        rate_limiter_check(limiter.healthy),
        budget_check(budget_ratio, alert_threshold=settings.cost_alert_threshold),
        sandbox_check(lambda: runner.isolation_status().level),
    ]
    return App(
        settings=settings,
        transport=transport,
        server=server,
        policy=policy,
        storage=storage,
        registry=registry,
        resources=resources,
        metrics=metrics,
        lifecycle=lifecycle,
        audit_log=audit_log,
        audit=audit,
        alerter=alerter,
        limiter=limiter,
        budget=budget,
        runner=runner,
        auth=auth,
        checks=checks,
        pool_state=storage.pool_state if isinstance(storage, Pooled) else None,
    )


def build_storage(settings: Settings) -> Storage:
    """PostgreSQL when `MCP_DESK_DATABASE_URL` is set, else the SQLite file under the storage path."""
    if settings.database_url is not None:
        from mcp_desk.storage.postgres import PostgresStorage  # the driver loads only when it is used

        return PostgresStorage(settings.database_url.get_secret_value())
    return SqliteStorage(settings.database_path)


def principal_source(
    settings: Settings, policy: Policy, transport: Transport, *, authenticated: bool
) -> Callable[[], Principal]:
    """The one place a caller's identity is decided: the bearer token over HTTP, else the local principal.

    With authentication configured there is no fallback: a request without a token never reaches a handler
    (the SDK answers 401), and if one ever did it is refused rather than treated as the local principal.
    """
    local = policy.principal_for(
        settings.stdio_principal, settings.stdio_role, "stdio" if transport != "http" else "http"
    )

    @functools.lru_cache(maxsize=4096)
    def from_token(principal_id: str, role: str) -> Principal:
        return policy.principal_for(principal_id, role, "http")

    def principal() -> Principal:
        token = get_access_token()
        if token is not None:
            return from_token(*principal_of(token))
        if authenticated:
            raise PermissionDenied("this request carries no credentials")
        return local

    return principal


def _server(registry: ToolRegistry, resources: Resources, prompts: Prompts) -> Server[Any]:
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
            on_subscriptions_listen=resources.listen,
            on_list_prompts=prompts.list_prompts,
            on_get_prompt=prompts.get_prompt,
            on_completion=resources.complete,
            on_set_logging_level=registry.set_log_level,
        )
