"""One tool call, one pipeline: guards nest around an endpoint, outermost first (as in Starlette).

This module knows nothing about MCP, so every guard can be tested with plain objects.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property, partial
from types import UnionType
from typing import Any, Protocol, Union, get_args, get_origin, get_type_hints

from pydantic import BaseModel, ConfigDict, create_model

from mcp_desk.domain.principal import Principal
from mcp_desk.errors import MissingClientCapability


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolAnnotationsSpec:
    """The behaviour hints a client may rely on; set them truthfully."""

    read_only: bool = False
    destructive: bool = False
    idempotent: bool = False
    open_world: bool = False


READ_ONLY = ToolAnnotationsSpec(read_only=True, idempotent=True)
WRITE = ToolAnnotationsSpec()
IDEMPOTENT_WRITE = ToolAnnotationsSpec(idempotent=True)
DESTRUCTIVE = ToolAnnotationsSpec(destructive=True, idempotent=True)


@dataclass(frozen=True, kw_only=True)
class ToolSpec:
    """A tool as data: its function, the scope it needs, and how it behaves.

    The docstring of `fn` is the description the model reads; its parameters after `env` are the arguments.
    """

    name: str
    fn: Callable[..., Awaitable[Any]]
    scope: str | None
    annotations: ToolAnnotationsSpec = WRITE
    title: str | None = None

    @cached_property
    def arguments(self) -> type[BaseModel]:
        """The arguments model, built once."""
        return arguments_model(self.fn, self.name)

    @cached_property
    def argument_names(self) -> tuple[str, ...]:
        """The arguments model's field names, in order, read once (`model_fields` is a class property)."""
        return tuple(self.arguments.model_fields)

    @cached_property
    def result(self) -> type[BaseModel]:
        """The result model, built once."""
        return result_model(self.fn)

    @property
    def description(self) -> str:
        """What the model reads about the tool."""
        return inspect.cleandoc(self.fn.__doc__ or self.name)


class ClientChannel(Protocol):
    """The caller's connection as a tool sees it; the registry adapts the SDK request context to this."""

    @property
    def protocol_version(self) -> str | None:
        """The negotiated protocol version."""
        ...

    @property
    def client_capabilities(self) -> Mapping[str, Any]:
        """The capabilities the client declared, as wire JSON."""
        ...

    @property
    def input_responses(self) -> Mapping[str, Mapping[str, Any]]:
        """Answers to the previous round's input requests (2026-07-28 multi-round calls), as wire JSON."""
        ...

    @property
    def request_state(self) -> str | None:
        """The state the client echoed back from the previous round."""
        ...

    async def report_progress(self, progress: float, total: float | None, message: str | None) -> None:
        """Send a progress notification for this call (a no-op when the client asked for none)."""

    async def log(self, level: str, message: str) -> None:
        """Send a log message on this call's stream."""

    async def request(self, method: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
        """Send a server-to-client request (sampling, elicitation, roots) and return its result."""
        ...


class NoClient:
    """The channel of a call that came from no MCP client (in-process use): nothing to talk back to."""

    @property
    def protocol_version(self) -> str | None:
        """No protocol."""
        return None

    @property
    def client_capabilities(self) -> Mapping[str, Any]:
        """No capabilities."""
        return {}

    @property
    def input_responses(self) -> Mapping[str, Mapping[str, Any]]:
        """No answers."""
        return {}

    @property
    def request_state(self) -> str | None:
        """No state."""
        return None

    async def report_progress(self, progress: float, total: float | None, message: str | None) -> None:
        """Nobody to tell."""

    async def log(self, level: str, message: str) -> None:
        """Nobody to tell."""

    async def request(self, method: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
        """Nobody to ask."""
        raise MissingClientCapability(f"no client to send {method} to", required_capabilities={})


NO_CLIENT = NoClient()


@dataclass(kw_only=True, slots=True)
class CallState:
    """What one call learns on its way through the chain; written by the guards and the registry, read back out.

    - `client`: the caller's channel, set by the registry, handed to the tool by the endpoint.
    - `result_model`: the MCP result model a tool returned as-is; the registry rebuilds it from the dict.
    - `output_tokens`: the result's token estimate, computed once (OutputCap, then RateLimit and Budget).
    - `truncation_note`: set by OutputCap when it shortened the result; the registry shows it to the client.
    - `trace_id`: the call's 32-hex trace id when tracing is on, for its log line and audit records.
    - `confirmation`: how a destructive tool's request for the user's confirmation went (`accepted`, `declined`,
      `cancelled`, `unavailable` when the client cannot ask, `requested` while a multi-round call waits for the
      answer); None when the tool asked nothing. Set by the tool, recorded by Audit.
    """

    client: ClientChannel = field(default_factory=lambda: NO_CLIENT)
    result_model: type[BaseModel] | None = None
    output_tokens: int | None = None
    truncation_note: str | None = None
    trace_id: str | None = None
    confirmation: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolCall:
    """One invocation travelling through the guards."""

    spec: ToolSpec
    principal: Principal
    arguments: Mapping[str, Any]
    request_id: str
    transport: str = "stdio"
    state: CallState = field(default_factory=lambda: CallState())

    def with_arguments(self, arguments: Mapping[str, Any]) -> ToolCall:
        """The same call (the same state) with other arguments; `dataclasses.replace` without its field walk."""
        return ToolCall(
            spec=self.spec,
            principal=self.principal,
            arguments=arguments,
            request_id=self.request_id,
            transport=self.transport,
            state=self.state,
        )


Next = Callable[[ToolCall], Awaitable[Any]]


class Guard(Protocol):
    """A step of the pipeline: inspect or refuse the call, then (usually) pass it on."""

    async def __call__(self, call: ToolCall, call_next: Next) -> Any: ...


def build_chain(guards: Sequence[Guard], endpoint: Next) -> Next:
    """Nest guards around `endpoint`; guards[0] is outermost, as in Starlette."""
    chain = endpoint
    for guard in reversed(guards):
        chain = partial(guard, call_next=chain)
    return chain


def arguments_model(fn: Callable[..., Any], name: str) -> type[BaseModel]:
    """A pydantic model of a tool's parameters (all but the first, `env`), unknown keys refused."""
    hints = get_type_hints(fn, include_extras=True)
    fields: dict[str, Any] = {}
    for param in list(inspect.signature(fn).parameters.values())[1:]:
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (hints[param.name], default)
    return create_model(f"{name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)


def result_model(fn: Callable[..., Any]) -> type[BaseModel]:
    """The pydantic model a tool returns (its return annotation).

    A tool that may also hand back an MCP result as-is (`Deleted | InputRequiredResult`: a multi-round call)
    names its own model first; that first member is the one its output schema describes.
    """
    returned = get_type_hints(fn)["return"]
    if get_origin(returned) in (Union, UnionType):
        returned = get_args(returned)[0]
    if not (isinstance(returned, type) and issubclass(returned, BaseModel)):
        raise TypeError(f"{fn.__name__} must be annotated to return a pydantic model")
    return returned
