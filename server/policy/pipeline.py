"""One tool call, one pipeline: guards nest around an endpoint, outermost first (as in Starlette).

This module knows nothing about MCP, so every guard can be tested with plain objects.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from server.domain.principal import Principal


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


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolSpec:
    """A tool as data: its function, the scope it needs, and how it behaves."""

    name: str
    fn: Callable[..., Awaitable[Any]]
    scope: str | None
    annotations: ToolAnnotationsSpec = WRITE
    title: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolCall:
    """One invocation travelling through the guards."""

    spec: ToolSpec
    principal: Principal
    arguments: Mapping[str, Any]
    request_id: str
    transport: str = "stdio"
    state: dict[str, Any] = field(default_factory=dict)


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
