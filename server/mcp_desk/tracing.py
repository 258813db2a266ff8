"""OpenTelemetry traces: spans on the MCP semantic conventions, exported over OTLP/HTTP.

Tracing is on only when an OTLP endpoint is configured (`mcp_desk.config.otel_traces_endpoint`). Off, the
app builds nothing from this module, leaves the SDK's own span middleware out of the server, and
`opentelemetry.sdk` is never imported, so a call costs exactly what it did without tracing.

On, the pieces are:

- `start_export`: the SDK's `TracerProvider` with a batching OTLP/HTTP exporter, installed as the global
  provider (the MCP SDK's span middleware and our spans both use it); the OpenTelemetry SDK itself reads
  the other standard variables (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`,
  `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_*`, ...).
- `HeaderParent`: outside the SDK's span middleware. When `params._meta` carries no `traceparent`, the
  HTTP request's `traceparent` header (and `tracestate`, `baggage`) becomes the parent instead.
- `SpanAttributes`: inside it. Adds what the SDK's span lacks: `network.transport` and `mcp.session.id`.
- `correlate`: the outermost guard. Puts the trace id in the call's log context and audit records.
- `GuardSpan`, `traced`: child spans for each guard (the one that refused is marked), for storage calls and
  for sandbox runs. Names and attributes come from code and bounded sets only: never an argument value, a
  result or a principal's secret.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import structlog
from opentelemetry import context, propagate, trace
from opentelemetry.trace import Span, StatusCode

from mcp_desk.errors import AppError
from mcp_desk.policy.pipeline import Guard, Next, ToolCall

__all__ = [
    "GuardSpan",
    "HeaderParent",
    "SpanAttributes",
    "correlate",
    "start_export",
    "traced",
    "traced_guards",
]

SERVICE_NAME = "mcp-desk"
TRACER_NAME = "mcp_desk"
# OpenTelemetry `network.transport`: stdio is a pipe, Streamable HTTP runs over TCP.
NETWORK_TRANSPORTS: Mapping[str, str] = {"stdio": "pipe", "http": "tcp", "memory": "inproc"}
PROPAGATED_HEADERS = ("traceparent", "tracestate", "baggage")

_tracer = trace.get_tracer(TRACER_NAME)
MiddlewareNext = Callable[[Any], Awaitable[Any]]


def start_export(endpoint: str, *, version: str) -> Callable[[], None]:
    """Install the SDK tracer provider exporting to `endpoint`; returns the shutdown (flush) function."""
    # Imported here so that a server without tracing never loads the SDK or the exporter.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # Our defaults first, then OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES over them.
    defaults = Resource.create({"service.name": SERVICE_NAME, "service.version": version})
    provider = TracerProvider(resource=defaults.merge(OTELResourceDetector().detect()))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    return provider.shutdown


def trace_id() -> str | None:
    """The current span's trace id as 32 hex digits, or None outside a trace."""
    span_context = trace.get_current_span().get_span_context()
    return trace.format_trace_id(span_context.trace_id) if span_context.is_valid else None


def _has_meta_parent(meta: Any) -> bool:
    return isinstance(meta, Mapping) and isinstance(meta.get("traceparent"), str)


class HeaderParent:
    """SDK middleware: the HTTP `traceparent` header is the parent when `params._meta` names none.

    It runs outside the SDK's span middleware, which falls back to the ambient context when `_meta`
    carries no valid `traceparent`; this attaches the header's context as that ambient context.
    """

    async def __call__(self, ctx: Any, call_next: MiddlewareNext) -> Any:
        """Run the rest of the chain under the header's trace context, if there is one to use."""
        request = ctx.request
        if request is None or _has_meta_parent(ctx.meta):
            return await call_next(ctx)
        carrier = {name: value for name in PROPAGATED_HEADERS if (value := request.headers.get(name))}
        if "traceparent" not in carrier:
            return await call_next(ctx)
        token = context.attach(propagate.extract(carrier))
        try:
            return await call_next(ctx)
        finally:
            context.detach(token)


class SpanAttributes:
    """SDK middleware inside the SDK's span: adds `network.transport` and `mcp.session.id` to it."""

    def __init__(self, transport: str) -> None:
        self.attributes: dict[str, str] = {}
        if transport in NETWORK_TRANSPORTS:
            self.attributes["network.transport"] = NETWORK_TRANSPORTS[transport]
        if transport == "http":
            self.attributes["network.protocol.name"] = "http"

    async def __call__(self, ctx: Any, call_next: MiddlewareNext) -> Any:
        """Label the current server span, then run the rest of the chain."""
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attributes(self.attributes)
            session_id = ctx.request.headers.get("mcp-session-id") if ctx.request is not None else None
            if session_id:
                span.set_attribute("mcp.session.id", session_id)
        return await call_next(ctx)


async def correlate(call: ToolCall, call_next: Next) -> Any:
    """Guard: the trace id goes into the call's log context (its `tool_call_finished` line) and audit records."""
    current = trace_id()
    if current is None:
        return await call_next(call)
    call.state.trace_id = current
    tokens = structlog.contextvars.bind_contextvars(trace_id=current)
    try:
        return await call_next(call)
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


def error_type(exc: BaseException) -> str:
    """`error.type` of a failure: an anticipated error's code, else the exception's type."""
    return exc.code if isinstance(exc, AppError) else type(exc).__qualname__


class _Below:
    """The `call_next` a traced guard receives: remembers what the rest of the chain raised."""

    __slots__ = ("call_next", "raised")

    def __init__(self, call_next: Next) -> None:
        self.call_next = call_next
        self.raised: BaseException | None = None

    async def __call__(self, call: ToolCall) -> Any:
        try:
            return await self.call_next(call)
        except BaseException as exc:
            self.raised = exc
            raise


class GuardSpan:
    """A guard run in its own child span `guard <name>`; the guard that refused the call is marked.

    A guard refused when it raised something other than what the rest of the chain raised through it:
    its span gets `error.type` (the error's code), `mcp_desk.guard.refused` and an error status. Guards
    that only pass an inner failure outward keep an unset status, so the refusing guard stands out.
    """

    def __init__(self, guard: Guard, name: str) -> None:
        self.guard = guard
        self.name = name
        self.span_name = f"guard {name}"

    async def __call__(self, call: ToolCall, call_next: Next) -> Any:
        """Run the guard inside its span."""
        below = _Below(call_next)
        attributes = {"mcp_desk.guard.name": self.name}
        with _tracer.start_as_current_span(
            self.span_name, attributes=attributes, record_exception=False, set_status_on_exception=False
        ) as span:
            try:
                return await self.guard(call, below)
            except BaseException as exc:
                if exc is not below.raised:
                    _mark_refusal(span, exc)
                raise


def _mark_refusal(span: Span, exc: BaseException) -> None:
    kind = error_type(exc)
    span.set_attributes({"error.type": kind, "mcp_desk.guard.refused": True})
    span.set_status(StatusCode.ERROR, kind)


def guard_name(guard: Guard) -> str:
    """A guard's name: its function or bound method's qualified name, else its class name."""
    name = getattr(guard, "__qualname__", None)
    return name if isinstance(name, str) else type(guard).__name__


def traced_guards(guards: Sequence[Guard]) -> list[Guard]:
    """The guard list with the trace id correlated first and every guard in its own span."""
    return [correlate, *(GuardSpan(guard, guard_name(guard)) for guard in guards)]


class _Traced:
    """A stand-in for an object whose public coroutine methods each run in a child span."""

    def __init__(self, target: object, *, prefix: str, attributes: Mapping[str, str]) -> None:
        self._target = target
        self._prefix = prefix
        self._attributes = dict(attributes)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if name.startswith("_") or not inspect.iscoroutinefunction(value):
            return value
        wrapped = self._wrap(name, value)
        setattr(self, name, wrapped)  # built once per method
        return wrapped

    def _wrap(self, name: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        span_name = f"{self._prefix} {name}"
        attributes = {**self._attributes, "code.function.name": name}

        async def call(*args: Any, **kwargs: Any) -> Any:
            with _tracer.start_as_current_span(
                span_name, attributes=attributes, record_exception=False, set_status_on_exception=False
            ) as span:
                try:
                    return await method(*args, **kwargs)
                except BaseException as exc:
                    # The type only: an exception's message may quote the arguments.
                    kind = error_type(exc)
                    span.set_attribute("error.type", kind)
                    span.set_status(StatusCode.ERROR, kind)
                    raise

        return call


def traced(target: object, *, prefix: str, **attributes: str) -> Any:
    """`target` with each public coroutine method in a child span named `<prefix> <method>`.

    Only the method's name and the given constant attributes are recorded: never its arguments or result.
    """
    return _Traced(target, prefix=prefix, attributes=attributes)
