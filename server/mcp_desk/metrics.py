"""Metrics: one CollectorRegistry per app and the instruments the dashboards and alert rules rely on.

Every label value comes from a bounded set given to the constructor; anything else is counted as
"other", so a principal, an id or an argument value can never become a time series. Every known
label set is created at start-up, so `rate()` works from the first scrape.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, get_args

from mcp_types.version import KNOWN_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION, LATEST_MODERN_VERSION
from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from mcp_desk.domain.models import PRIORITIES, SLA_STATES, STATUSES
from mcp_desk.errors import INTERNAL, error_codes
from mcp_desk.policy.audit import EventType

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
OTHER = "other"
TOOL_CALL = "tools/call"

OUTCOMES: tuple[str, ...] = ("ok", "error", "denied", "rate_limited", "invalid", "budget")
_OUTCOME_SET = frozenset(OUTCOMES)
# Every AppError code (derived from the classes), "internal" for unexpected exceptions, "cancelled", and
# "protocol" for JSON-RPC errors; "" means success.
ERROR_TYPES: tuple[str, ...] = (*error_codes(), INTERNAL, "cancelled", "protocol")
# `error_type` on the duration histogram, as the OpenTelemetry MCP conventions define it: `tool_error` for a
# tools/call result with isError, the JSON-RPC error code of a protocol error, else the exception's type
# (a class name: bounded by the code, never by input). Anything else is counted as "other".
TOOL_ERROR = "tool_error"
_CONVENTION_ERROR_TYPE = re.compile(r"tool_error|-?[0-9]{1,6}|[A-Za-z_][A-Za-z0-9_.]{0,79}")
# One label set per era is created at start-up (the newest version of each); older handshake versions appear
# when a client negotiates them.
PRECREATED_PROTOCOL_VERSIONS: tuple[str, ...] = (LATEST_HANDSHAKE_VERSION, LATEST_MODERN_VERSION)
METHODS: tuple[str, ...] = (
    TOOL_CALL,
    "initialize",
    "ping",
    "tools/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
)
# OpenTelemetry `network.transport`: stdio is a pipe, Streamable HTTP runs over TCP.
TRANSPORTS: Mapping[str, str] = {"stdio": "pipe", "pipe": "pipe", "http": "tcp", "tcp": "tcp", "memory": "inproc"}
# RateLimited.context["scope"] of the RateLimit guard (the HTTP pre-check is not wired, so no "http").
RATE_LIMIT_SCOPES: tuple[str, ...] = ("requests", "tokens", "tool", "unavailable")
# mcp_desk_redis_errors_total{operation}: limit decisions and charges, and the fan-out bus (server/mcp_desk/bus.py).
REDIS_OPERATIONS: tuple[str, ...] = ("rate_limit", "budget", "publish", "subscribe")
_REDIS_OPERATION_SET = frozenset(REDIS_OPERATIONS)
AUDIT_EVENT_TYPES: tuple[str, ...] = get_args(EventType)
# The kinds `policy.alerts.Alerter` is called with (audit: auth_failed, path_blocked, permission_denied_burst;
# budget: budget_threshold, budget_exhausted).
ALERT_KINDS: tuple[str, ...] = (
    "auth_failed",
    "path_blocked",
    "permission_denied_burst",
    "budget_threshold",
    "budget_exhausted",
)
SANDBOX_OUTCOMES: tuple[str, ...] = ("ok", "failed", "timeout", "killed", "truncated", "rejected")
TICKET_STATUSES: tuple[str, ...] = STATUSES
# mcp_desk_sla_tickets{priority,state} counts open tickets only (not resolved or closed), so `met` never shows.
SLA_OPEN_STATES: tuple[str, ...] = tuple(state for state in SLA_STATES if state != "met")
# mcp_desk_health_check_status{check}: a check's last verdict as a number alerts can compare against.
HEALTH_VALUES: Mapping[str, float] = {"ok": 1.0, "warn": 0.5, "fail": 0.0}
NOT_CHECKED = float("nan")
# Session lifetimes: a one-shot script to a desktop host left open all day.
SESSION_BUCKETS: tuple[float, ...] = (1.0, 5.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 14400.0, 86400.0)
# Tool latencies: sub-millisecond lookups up to diagnostics that may run for tens of seconds.
DURATION_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)


def _bounded(value: str, allowed: frozenset[str]) -> str:
    return value if value in allowed else OTHER


class Metrics:
    """The app's instruments on its own registry; it satisfies `policy.observe.CallRecorder`."""

    def __init__(
        self,
        *,
        version: str,
        tools: Iterable[str],
        transports: Iterable[str] = ("stdio", "http"),
        methods: Iterable[str] = METHODS,
        diagnostics: Iterable[str] = (),
        rate_limit_scopes: Iterable[str] = RATE_LIMIT_SCOPES,
        audit_event_types: Iterable[str] = AUDIT_EVENT_TYPES,
        alert_kinds: Iterable[str] = ALERT_KINDS,
        sandbox_outcomes: Iterable[str] = SANDBOX_OUTCOMES,
        ticket_statuses: Iterable[str] = TICKET_STATUSES,
        protocol_versions: Iterable[str] = KNOWN_PROTOCOL_VERSIONS,
    ) -> None:
        # `*_created` series double the exposition and no dashboard or rule uses them (process-wide switch).
        disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus_client leaves it unannotated
        self.registry = CollectorRegistry(auto_describe=True)
        self._tools = frozenset(tools)
        self._transports = frozenset(TRANSPORTS.get(t, OTHER) for t in transports)
        self._methods = frozenset(methods) | {TOOL_CALL}
        self._error_types = frozenset(ERROR_TYPES)
        self._diagnostics = frozenset(diagnostics)
        self._scopes = frozenset(rate_limit_scopes)
        self._event_types = frozenset(audit_event_types)
        self._alert_kinds = frozenset(alert_kinds)
        self._sandbox_outcomes = frozenset(sandbox_outcomes)
        self._statuses = tuple(ticket_statuses)
        self._versions = frozenset(protocol_versions)
        self._checks: frozenset[str] = frozenset()
        # Label children resolved once per (bounded) label tuple: `.labels()` costs a few µs per call.
        self._children: dict[tuple[str, ...], Any] = {}
        self._register_collectors()
        self._build_instruments()
        self._precreate()
        self._build_info.labels(version=version).set(1)

    def _register_collectors(self) -> None:
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    def _build_instruments(self) -> None:
        r = self.registry
        self._duration = Histogram(
            "mcp_server_operation_duration_seconds",
            "Duration of MCP operations (OpenTelemetry MCP semantic conventions).",
            ["mcp_method_name", "gen_ai_tool_name", "error_type", "network_transport", "mcp_protocol_version"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self._session_duration = Histogram(
            "mcp_server_session_duration_seconds",
            "Duration of MCP sessions (OpenTelemetry MCP semantic conventions).",
            ["network_transport", "mcp_protocol_version", "error_type"],
            buckets=SESSION_BUCKETS,
            registry=r,
        )
        self._tool_calls = Counter("mcp_desk_tool_calls", "Tool calls by outcome.", ["tool", "outcome"], registry=r)
        self._denied = Counter("mcp_desk_permission_denied", "Calls refused by policy.", ["tool"], registry=r)
        self._rate_limited = Counter("mcp_desk_rate_limited", "Calls refused by a rate limit.", ["scope"], registry=r)
        self._redis_errors = Counter("mcp_desk_redis_errors", "Failed Redis operations.", ["operation"], registry=r)
        self._audit = Counter("mcp_desk_audit_events", "Audit records written.", ["event_type"], registry=r)
        self._alerts = Counter("mcp_desk_security_alerts", "Security alerts raised.", ["kind"], registry=r)
        self._sessions = Gauge("mcp_desk_sessions_active", "Open MCP sessions.", registry=r)
        self._tokens = Counter("mcp_desk_output_tokens", "Estimated output tokens returned.", ["tool"], registry=r)
        self._cost = Counter("mcp_desk_context_cost_usd", "Estimated context cost of tool output in USD.", registry=r)
        self._budget = Gauge("mcp_desk_budget_used_ratio", "Share of the daily context budget used.", registry=r)
        self._sandbox = Counter(
            "mcp_desk_sandbox_runs", "Sandboxed diagnostic runs.", ["command", "outcome"], registry=r
        )
        self._tickets = Gauge("mcp_desk_tickets", "Tickets by status.", ["status"], registry=r)
        self._sla_tickets = Gauge(
            "mcp_desk_sla_tickets",
            "Open tickets (not resolved or closed) by priority and SLA state.",
            ["priority", "state"],
            registry=r,
        )
        self._db_pool = Gauge(
            "mcp_desk_db_pool_connections",
            "PostgreSQL pool connections by state (idle, in_use, max); absent on SQLite.",
            ["state"],
            registry=r,
        )
        self._health = Gauge(
            "mcp_desk_health_check_status",
            "Last result of each /health check: 1 ok, 0.5 warn, 0 fail (NaN until first run).",
            ["check"],
            registry=r,
        )
        self._build_info = Gauge(
            "mcp_desk_build_info", "Build information; the value is always 1.", ["version"], registry=r
        )

    def _precreate(self) -> None:
        for tool in self._tools:
            self._denied.labels(tool=tool)
            self._tokens.labels(tool=tool)
            for outcome in OUTCOMES:
                self._tool_calls.labels(tool=tool, outcome=outcome)
            for transport, version in self._transport_versions():
                self._duration.labels(TOOL_CALL, tool, "", transport, version)
        for method in self._methods - {TOOL_CALL}:
            for transport, version in self._transport_versions():
                self._duration.labels(method, "", "", transport, version)
        for transport, version in self._transport_versions():
            self._session_duration.labels(transport, version, "")
        for scope in self._scopes:
            self._rate_limited.labels(scope=scope)
        for operation in REDIS_OPERATIONS:
            self._redis_errors.labels(operation=operation)
        for event_type in self._event_types:
            self._audit.labels(event_type=event_type)
        for kind in self._alert_kinds:
            self._alerts.labels(kind=kind)
        for command in self._diagnostics:
            for sandbox_outcome in self._sandbox_outcomes:
                self._sandbox.labels(command=command, outcome=sandbox_outcome)
        self.set_tickets({})
        self.set_sla_tickets({})

    def _transport_versions(self) -> list[tuple[str, str]]:
        versions = [v for v in PRECREATED_PROTOCOL_VERSIONS if v in self._versions]
        return [(transport, version) for transport in self._transports for version in versions]

    def record_call(
        self, tool: str, outcome: str, duration_s: float, transport: str, error_type: str | None = None
    ) -> None:
        """Count one finished tool call by outcome.

        Its latency is observed by `observe_method` at the protocol layer, which also sees the protocol
        version and calls refused before the guards run (an unknown tool, invalid arguments).
        """
        name = _bounded(tool, self._tools)
        self._child(self._tool_calls, "calls", name, _bounded(outcome, _OUTCOME_SET)).inc()

    def observe_method(
        self,
        method: str,
        duration_s: float,
        transport: str,
        error_type: str | None = None,
        *,
        tool: str = "",
        protocol_version: str = "",
    ) -> None:
        """Observe one MCP operation's latency; `error_type` as the OpenTelemetry MCP conventions define it."""
        bounded_method = _bounded(method, self._methods)
        name = _bounded(tool, self._tools) if bounded_method == TOOL_CALL and tool else ""
        error = self._error_type(error_type)
        net = _bounded(TRANSPORTS.get(transport, OTHER), self._transports)
        version = _bounded(protocol_version, self._versions) if protocol_version else ""
        child = self._child(self._duration, "duration", bounded_method, name, error, net, version)
        child.observe(max(duration_s, 0.0))

    def observe_session(
        self, duration_s: float, transport: str, *, protocol_version: str = "", error_type: str | None = None
    ) -> None:
        """Observe how long one MCP session lasted (an HTTP session, or a stdio connection)."""
        net = _bounded(TRANSPORTS.get(transport, OTHER), self._transports)
        version = _bounded(protocol_version, self._versions) if protocol_version else ""
        self._session_duration.labels(net, version, self._error_type(error_type)).observe(max(duration_s, 0.0))

    def _error_type(self, error_type: str | None) -> str:
        if not error_type:
            return ""
        if error_type in self._error_types or _CONVENTION_ERROR_TYPE.fullmatch(error_type):
            return error_type
        return OTHER

    def _child(self, metric: Any, family: str, *values: str) -> Any:
        """`metric.labels(*values)`, cached; `values` are already bounded, so the cache is too."""
        key = (family, *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def permission_denied(self, tool: str) -> None:
        """Count a call refused by policy (scope, path or command)."""
        self._denied.labels(tool=_bounded(tool, self._tools)).inc()

    def rate_limited(self, scope: str) -> None:
        """Count a refusal by the rate limit named by `scope` (requests, tokens, tool)."""
        self._rate_limited.labels(scope=_bounded(scope, self._scopes)).inc()

    def redis_error(self, operation: str) -> None:
        """Count a failed Redis operation (rate_limit, budget, publish, subscribe)."""
        self._redis_errors.labels(operation=_bounded(operation, _REDIS_OPERATION_SET)).inc()

    def audit_event(self, event_type: str) -> None:
        """Count one audit record written."""
        self._child(self._audit, "audit", _bounded(event_type, self._event_types)).inc()

    def security_alert(self, kind: str) -> None:
        """Count one security alert raised."""
        self._alerts.labels(kind=_bounded(kind, self._alert_kinds)).inc()

    def set_sessions(self, n: int) -> None:
        """Set the number of open MCP sessions."""
        self._sessions.set(max(n, 0))

    def output_tokens(self, tool: str, n: int) -> None:
        """Add the estimated output tokens of one result."""
        if n > 0:
            self._child(self._tokens, "tokens", _bounded(tool, self._tools)).inc(n)

    def context_cost(self, usd: float) -> None:
        """Add the estimated context cost of one result, in USD."""
        if usd > 0:
            self._cost.inc(usd)

    def set_budget_ratio(self, ratio: float) -> None:
        """Set the share of the daily context budget used (the highest across principals)."""
        self._budget.set(max(ratio, 0.0))

    def sandbox_run(self, command: str, outcome: str) -> None:
        """Count one diagnostic run by template name and outcome."""
        self._sandbox.labels(
            command=_bounded(command, self._diagnostics), outcome=_bounded(outcome, self._sandbox_outcomes)
        ).inc()

    def set_tickets(self, counts: Mapping[str, int]) -> None:
        """Set ticket counts by status; statuses not in `counts` are zero."""
        other = sum(n for status, n in counts.items() if status not in self._statuses)
        for status in self._statuses:
            self._tickets.labels(status=status).set(counts.get(status, 0))
        if other:
            self._tickets.labels(status=OTHER).set(other)

    def set_sla_tickets(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Set open-ticket counts by (priority, SLA state); pairs not in `counts` are zero, unknown pairs dropped."""
        for priority in PRIORITIES:
            for state in SLA_OPEN_STATES:
                self._sla_tickets.labels(priority=priority, state=state).set(counts.get((priority, state), 0))

    def set_db_pool(self, states: Mapping[str, int]) -> None:
        """Set the database pool's connections by state (idle, in_use, max)."""
        for state in ("idle", "in_use", "max"):
            self._db_pool.labels(state=state).set(states.get(state, 0))

    def declare_health_checks(self, names: Iterable[str]) -> None:
        """Create `mcp_desk_health_check_status` for these checks (NaN until they first run); others read "other"."""
        new = frozenset(names) - self._checks
        self._checks |= new
        for name in new:
            self._health.labels(check=name).set(NOT_CHECKED)

    def set_health(self, statuses: Mapping[str, str]) -> None:
        """Record each check's verdict (ok, warn or fail) by check name."""
        for name, status in statuses.items():
            self._health.labels(check=_bounded(name, self._checks)).set(HEALTH_VALUES.get(status, 0.0))

    def render(self) -> bytes:
        """The Prometheus text exposition (format 0.0.4) of this app's registry."""
        return generate_latest(self.registry)
