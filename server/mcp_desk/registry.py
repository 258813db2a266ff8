"""Tool specs and the guard chain, served as MCP tools: the one place AppError becomes a tool error."""

from __future__ import annotations

import functools
import secrets
import time
import typing
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import mcp_types as types
import orjson
import structlog
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.shared.message import ServerMessageMetadata
from pydantic import BaseModel, ValidationError

from mcp_desk.domain.principal import Principal
from mcp_desk.errors import AppError, MissingClientCapability, quote, render
from mcp_desk.policy.permissions import visible_tools
from mcp_desk.policy.pipeline import CallState, Next, ToolCall, ToolSpec
from mcp_desk.sdk import connection_of

log = structlog.get_logger()
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
# A tool may return an MCP result as-is; the guards still see it as a wire-shaped dict.
RESULT_MODELS: tuple[type[BaseModel], ...] = (types.CallToolResult, types.InputRequiredResult)
MISSING_CLIENT_CAPABILITY = -32021  # MissingRequiredClientCapabilityError
MAX_PROTOCOL_MESSAGE_CHARS = 1000  # longer than any message of ours; only quoted client input gets this long


def passes_through(spec: ToolSpec) -> bool:
    """True when the tool returns MCP results itself (no structured output schema of ours)."""
    returned = typing.get_type_hints(spec.fn).get("return")
    options = typing.get_args(returned) or (returned,)
    return all(option in RESULT_MODELS for option in options)


def structured(call: ToolCall, result: BaseModel) -> dict[str, Any]:
    """The dict the guards see for a tool's result; an MCP result keeps its wire shape and its model is noted."""
    if isinstance(result, RESULT_MODELS):
        call.state.result_model = type(result)
        wire: dict[str, Any] = result.model_dump(mode="json", by_alias=True, exclude_none=True)
        return wire
    plain: dict[str, Any] = result.model_dump(mode="json")
    return plain


def mcp_tool(spec: ToolSpec, *, read_only: bool | None = None) -> types.Tool:
    """The MCP description of a tool: schemas from its models, annotations from its spec."""
    hints = spec.annotations
    return types.Tool(
        name=spec.name,
        title=spec.title,
        description=spec.description,
        input_schema=spec.arguments.model_json_schema(),
        output_schema=None if passes_through(spec) else spec.result.model_json_schema(),
        annotations=types.ToolAnnotations(
            read_only_hint=hints.read_only if read_only is None else read_only,
            destructive_hint=hints.destructive,
            idempotent_hint=hints.idempotent,
            open_world_hint=hints.open_world,
        ),
    )


ERROR_META = "mcp-desk/error"


def tool_error(exc: BaseException, redact: Redact, *, tool: str) -> types.CallToolResult:
    """A failed call as a tool result (`isError`): `code: public` and `_meta` details, or the generic message."""
    rendered = render(exc, tool=tool)
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=redact(rendered.message))],
        is_error=True,
        _meta={ERROR_META: rendered.details} if rendered.details else None,
    )


def protocol_error(failure: AppError | str, redact: Redact, *, code: int = types.INVALID_PARAMS) -> MCPError:
    """A refusal as a JSON-RPC error (resources, prompts, unknown tools): the same rendering as tool errors."""
    if isinstance(failure, str):
        return MCPError(code=code, message=redact(failure))
    rendered = render(failure)
    data = rendered.details if isinstance(failure, MissingClientCapability) else None
    return MCPError(code=code, message=redact(rendered.message), data=data)


TRUNCATION_META = "mcp-desk/truncation"


def ok_result(structured: dict[str, Any], *, truncation_note: str | None = None) -> dict[str, Any]:
    """Structured content plus the same JSON as text, for clients that only read text; as wire JSON.

    A result the output cap shortened also carries the cap's note: as a second text block (the model reads
    it) and in `_meta` (programs read it); structuredContent stays exactly what the output schema allows.

    A wire dict rather than a `CallToolResult`: the SDK validates and shapes every result against the
    protocol's schema anyway (a dict takes the same path), and building the model first cost a validation
    and a model_dump of the whole result for nothing (a 20-note list_notes page, the SDK's own dump included:
    40-46 µs as a model, 23-25 µs as wire JSON; `python -m bench.http_layers`).
    """
    content = [{"type": "text", "text": orjson.dumps(structured).decode()}]
    if truncation_note is None:
        return {"content": content, "structuredContent": structured, "isError": False, "resultType": "complete"}
    content.append({"type": "text", "text": truncation_note})
    meta = {TRUNCATION_META: {"truncated": True, "note": truncation_note}}
    return {
        "content": content,
        "structuredContent": structured,
        "_meta": meta,
        "isError": False,
        "resultType": "complete",
    }


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
        return [self._tools[spec.name] for spec in visible_tools(principal, self.specs.values())]

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
    ) -> types.CallToolResult | types.InputRequiredResult | dict[str, Any]:
        """`tools/call`: unknown tool → protocol error; otherwise the guard chain decides.

        A successful call of one of our tools answers wire JSON (see `ok_result`); errors and the results of
        tools that return MCP results themselves answer models. The SDK serialises both the same way.
        """
        spec = self.specs.get(params.name)
        if spec is None:
            raise protocol_error(f"Unknown tool: {quote(params.name)}", self.redact)
        call = ToolCall(
            spec=spec,
            principal=self.principal(),
            arguments=params.arguments or {},
            request_id=secrets.token_hex(8),  # 64 random bits: 0.6 µs, where uuid4().hex[:16] (60 bits) took 2.2 µs
            transport=self.transport,
            state=CallState(client=SdkChannel(ctx, params, self._client_log)),
        )
        try:
            result = await self.chain(call)
            model = call.state.result_model
            if model is not None:
                # `structured` noted one of RESULT_MODELS, so the rebuilt model is that result type again.
                return typing.cast("types.CallToolResult | types.InputRequiredResult", model.model_validate(result))
            return ok_result(result, truncation_note=call.state.truncation_note)
        except MissingClientCapability as exc:
            raise protocol_error(exc, self.redact, code=MISSING_CLIENT_CAPABILITY) from None
        except AppError as exc:
            await self._client_log(ctx, "warning", f"{spec.name} refused: {exc.code}")
            return tool_error(exc, self.redact, tool=spec.name)
        except Exception as exc:
            log.exception("tool_failed_unexpectedly", tool=spec.name, request_id=call.request_id)
            await self._client_log(ctx, "error", f"{spec.name} failed; request id {call.request_id}")
            return tool_error(exc, self.redact, tool=spec.name)

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


Log = Callable[[ServerRequestContext[Any], types.LoggingLevel, str], Awaitable[None]]
# Server-to-client requests a tool may send: method -> (client capability it needs, request model, result model).
_REQUESTS: dict[str, tuple[str, type[BaseModel], type[BaseModel]]] = {
    "sampling/createMessage": ("sampling", types.CreateMessageRequest, types.CreateMessageResult),
    "elicitation/create": ("elicitation", types.ElicitRequest, types.ElicitResult),
    "roots/list": ("roots", types.ListRootsRequest, types.ListRootsResult),
}


@dataclass(frozen=True)
class SdkChannel:
    """`ClientChannel` over the SDK's request context and the request's params."""

    ctx: ServerRequestContext[Any]
    params: types.InputResponseRequestParams | None
    send_log: Log | None = None  # the registry's per-connection logger; without one, logs are dropped

    @property
    def protocol_version(self) -> str | None:
        """The negotiated protocol version."""
        return self.ctx.protocol_version

    @property
    def client_capabilities(self) -> Mapping[str, Any]:
        """The capabilities the client declared, as wire JSON."""
        declared = self.ctx.session.client_capabilities
        return declared.model_dump(mode="json", by_alias=True, exclude_none=True) if declared else {}

    @property
    def input_responses(self) -> Mapping[str, Mapping[str, Any]]:
        """Answers to the previous round's input requests, as wire JSON."""
        answers = (self.params.input_responses if self.params else None) or {}
        return {key: value.model_dump(mode="json", by_alias=True, exclude_none=True) for key, value in answers.items()}

    @property
    def request_state(self) -> str | None:
        """The state the client echoed back (already verified by the SDK's request-state boundary)."""
        return self.params.request_state if self.params else None

    async def report_progress(self, progress: float, total: float | None, message: str | None) -> None:
        """Send notifications/progress (a no-op when the client sent no progress token)."""
        await self.ctx.session.report_progress(progress, total, message)

    async def log(self, level: str, message: str) -> None:
        """Send notifications/message when the client asked for this level with logging/setLevel."""
        if self.send_log is not None and level in LOG_LEVELS:
            await self.send_log(self.ctx, level, message)

    async def request(self, method: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
        """Send a server-to-client request on this call's stream; refused unless the client declared it."""
        if method not in _REQUESTS:
            raise ValueError(f"unsupported server-to-client request {method!r}")
        capability, request_model, result_model = _REQUESTS[method]
        if capability not in self.client_capabilities:
            raise MissingClientCapability(
                f"Missing required client capability: {capability}", required_capabilities={capability: {}}
            )
        request = request_model.model_validate({"method": method, "params": dict(params)})
        metadata = ServerMessageMetadata(related_request_id=self.ctx.request_id)
        result = await self.ctx.session.send_request(request, result_model, metadata=metadata)  # type: ignore[arg-type]
        wire: dict[str, Any] = result.model_dump(mode="json", by_alias=True, exclude_none=True)
        return wire


class QuotedErrors:
    """SDK middleware: a protocol error the SDK raises quotes at most 100 characters of what the client sent.

    The SDK answers an unknown method with `Method not found` and the whole method name as `data` (a 1 MB
    name would make a 1 MB reply); every string in an error's message and data is cut with `quote()` here,
    before the SDK writes the response, on every transport.
    """

    async def __call__(self, ctx: ServerRequestContext[Any], call_next: Callable[[Any], Awaitable[Any]]) -> Any:
        try:
            return await call_next(ctx)
        except MCPError as exc:
            data = quote(exc.data) if isinstance(exc.data, str) else exc.data
            # Our own messages quote at most 100 characters of input; only a message quoting more is cut.
            message = exc.message if len(exc.message) <= MAX_PROTOCOL_MESSAGE_CHARS else quote(exc.message)
            if data is exc.data and message is exc.message:
                raise
            raise MCPError(code=exc.code, message=message, data=data) from None


class MethodTimer:
    """SDK middleware that times every MCP method, tools/call included, on the OpenTelemetry MCP conventions.

    `error_type`: `tool_error` for a tools/call result with isError (a refusal by a guard included), the
    JSON-RPC code of a protocol error (an unknown tool: -32602), else the exception's type. It also keeps
    the protocol version last negotiated or used, which labels a stdio connection's session duration.
    """

    def __init__(self, metrics: MethodRecorder, transport: str) -> None:
        self.metrics = metrics
        self.transport = transport
        self.protocol_version = ""

    async def __call__(self, ctx: ServerRequestContext[Any], call_next: Callable[[Any], Awaitable[Any]]) -> Any:
        started = time.perf_counter()
        error: str | None = None
        version = ctx.protocol_version
        try:
            result = await call_next(ctx)
        except MCPError as exc:
            error = str(exc.error.code)
            raise
        except ValidationError:
            error = str(types.INVALID_PARAMS)  # what the SDK answers for params that fail validation
            raise
        except BaseException as exc:
            error = type(exc).__qualname__
            raise
        else:
            error = TOOL_ERROR if ctx.method == "tools/call" and _is_tool_error(result) else None
            if ctx.method == "initialize":
                version = _negotiated(result) or version
            self.protocol_version = version
            return result
        finally:
            name = ctx.params.get("name") if ctx.method == "tools/call" and ctx.params else None
            self.metrics.observe_method(
                ctx.method,
                time.perf_counter() - started,
                self.transport,
                error,
                tool=name if isinstance(name, str) else "",
                protocol_version=version,
            )


TOOL_ERROR = "tool_error"


def negotiated_version(middleware: Sequence[object]) -> str:
    """The protocol version the server's MethodTimer last saw ("" without a timer or a request)."""
    timer = next((m for m in middleware if isinstance(m, MethodTimer)), None)
    return timer.protocol_version if timer is not None else ""


def _is_tool_error(result: Any) -> bool:
    match result:
        case types.CallToolResult(is_error=True) | {"isError": True}:
            return True
        case _:
            return False


def _negotiated(result: Any) -> str:
    """The protocol version an initialize result settled on ("" if it names none)."""
    match result:
        case types.InitializeResult(protocol_version=str(version)) | {"protocolVersion": str(version)}:
            return version
        case _:
            return ""


class MethodRecorder(Protocol):
    """What MethodTimer needs from the metrics."""

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
        """Observe one method's latency."""
