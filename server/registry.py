"""Tool specs and the guard chain, served as MCP tools: the one place AppError becomes a tool error."""

from __future__ import annotations

import functools
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import mcp_types as types
import orjson
import structlog
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError

from server.domain.principal import Principal
from server.errors import AppError, RateLimited
from server.policy.pipeline import Next, ToolCall, ToolSpec

log = structlog.get_logger()
MAX_ECHOED_NAME = 64
LOG_LEVELS: tuple[types.LoggingLevel, ...] = (
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
)

PrincipalSource = Callable[[], Principal]
Redact = Callable[[str], str]


def mcp_tool(spec: ToolSpec, *, read_only: bool | None = None) -> types.Tool:
    """The MCP description of a tool: schemas from its models, annotations from its spec."""
    hints = spec.annotations
    return types.Tool(
        name=spec.name,
        title=spec.title,
        description=spec.description,
        input_schema=spec.arguments.model_json_schema(),
        output_schema=spec.result.model_json_schema(),
        annotations=types.ToolAnnotations(
            read_only_hint=hints.read_only if read_only is None else read_only,
            destructive_hint=hints.destructive,
            idempotent_hint=hints.idempotent,
            open_world_hint=hints.open_world,
        ),
    )


def error_result(exc: AppError, redact: Redact) -> types.CallToolResult:
    """A tool error the model can act on; `_meta` carries machine-readable details."""
    detail: dict[str, Any] = {"code": exc.code}
    if isinstance(exc, RateLimited):
        detail["retry_after_seconds"] = exc.retry_after_seconds
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=redact(f"{exc.code}: {exc.public}"))],
        is_error=True,
        _meta={"mcp-desk/error": detail},
    )


def ok_result(structured: dict[str, Any]) -> types.CallToolResult:
    """Structured content plus the same JSON as text, for clients that only read text."""
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=orjson.dumps(structured).decode())],
        structured_content=structured,
    )


class ToolRegistry:
    """Serves `tools/list` (filtered per caller) and `tools/call` (through the guard chain)."""

    def __init__(
        self,
        *,
        specs: Sequence[ToolSpec],
        chain: Next,
        principal: PrincipalSource,
        redact: Redact,
        transport: str,
        read_only_overrides: dict[str, bool] | None = None,
    ) -> None:
        self.specs = {spec.name: spec for spec in specs}
        self.chain = chain
        self.principal = principal
        self.redact = redact
        self.transport = transport
        # Per connection: the level a client asked for with logging/setLevel (none asked: no log messages).
        self._log_levels: weakref.WeakKeyDictionary[Connection, int] = weakref.WeakKeyDictionary()
        self._overrides = read_only_overrides or {}

    @functools.cached_property
    def _tools(self) -> dict[str, types.Tool]:
        # Built on first use (tools/list, or a call's schema check), not at start-up: generating 21 pairs of
        # JSON schemas is ~0.2 s that a stdio client would otherwise wait for before `initialize` is answered.
        return {name: mcp_tool(spec, read_only=self._overrides.get(name)) for name, spec in self.specs.items()}

    def visible(self, principal: Principal) -> list[types.Tool]:
        """The tools this principal may call; the others are absent, not greyed out."""
        return [
            self._tools[name] for name, spec in self.specs.items() if spec.scope is None or principal.has(spec.scope)
        ]

    def input_schema(self, name: str) -> dict[str, Any] | None:
        """A tool's input schema by name (for the SDK's header validation on the 2026-07-28 wire)."""
        tool = self._tools.get(name)
        return None if tool is None else tool.input_schema

    async def list_tools(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        """`tools/list` for the calling principal."""
        return types.ListToolsResult(tools=self.visible(self.principal()))

    async def call_tool(
        self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        """`tools/call`: unknown tool → protocol error; otherwise the guard chain decides."""
        spec = self.specs.get(params.name)
        if spec is None:
            shown = self.redact(params.name[:MAX_ECHOED_NAME])
            raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown tool: {shown}")
        call = ToolCall(
            spec=spec,
            principal=self.principal(),
            arguments=params.arguments or {},
            request_id=uuid.uuid4().hex[:16],
            transport=self.transport,
        )
        try:
            return ok_result(await self.chain(call))
        except AppError as exc:
            await self._client_log(ctx, "warning", f"{spec.name} refused: {exc.code}")
            return error_result(exc, self.redact)
        except Exception:
            log.exception("tool_failed_unexpectedly", tool=spec.name, request_id=call.request_id)
            await self._client_log(ctx, "error", f"{spec.name} failed; request id {call.request_id}")
            return types.CallToolResult(
                content=[types.TextContent(type="text", text=f"Error executing tool {spec.name}")], is_error=True
            )

    async def set_log_level(
        self, ctx: ServerRequestContext[Any], params: types.SetLevelRequestParams
    ) -> types.EmptyResult:
        """`logging/setLevel`: from now on this connection receives our log messages at or above the level."""
        self._log_levels[connection_of(ctx)] = LOG_LEVELS.index(params.level)
        return types.EmptyResult()

    async def _client_log(self, ctx: ServerRequestContext[Any], level: types.LoggingLevel, message: str) -> None:
        wanted = self._log_levels.get(connection_of(ctx))
        if wanted is None or LOG_LEVELS.index(level) < wanted:
            return
        params = types.LoggingMessageNotificationParams(level=level, logger="mcp-desk", data=message)
        await ctx.session.send_notification(types.LoggingMessageNotification(params=params), ctx.request_id)


class MethodTimer:
    """SDK middleware that times every MCP method except tools/call (the Observe guard times those)."""

    def __init__(self, metrics: MethodRecorder, transport: str) -> None:
        self.metrics = metrics
        self.transport = transport

    async def __call__(self, ctx: ServerRequestContext[Any], call_next: Callable[[Any], Awaitable[Any]]) -> Any:
        if ctx.method == "tools/call":
            return await call_next(ctx)
        started = time.perf_counter()
        error: str | None = None
        try:
            return await call_next(ctx)
        except MCPError:
            error = "protocol"
            raise
        except Exception:
            error = "internal"
            raise
        finally:
            self.metrics.observe_method(ctx.method, time.perf_counter() - started, self.transport, error)


class MethodRecorder(Protocol):
    """What MethodTimer needs from the metrics."""

    def observe_method(self, method: str, duration_s: float, transport: str, error_type: str | None = None) -> None:
        """Observe one method's latency."""


def connection_of(ctx: ServerRequestContext[Any]) -> Connection:
    """The connection behind a request: state that outlives one request (subscriptions, log level) hangs on it."""
    # 2.3.0 hands handlers a per-request ServerSession and exposes no public accessor for its connection.
    return ctx.session._connection  # see comment above
