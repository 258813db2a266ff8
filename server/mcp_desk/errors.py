"""Failures we anticipate and answer with a message a model can act on, and how every failure is shown.

`render()` is the one place a refusal or failure becomes what a client reads (the registry, resources,
prompts and the HTTP guards all go through it); `quote()` is the one way an error message quotes what the
client sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

MAX_QUOTED_CHARS = 100
INTERNAL = "internal"  # the error type of an unexpected exception


def quote(value: object) -> str:
    """At most 100 characters of client input (a method, tool name, id, path, URI) for an error message."""
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= MAX_QUOTED_CHARS else f"{text[:MAX_QUOTED_CHARS]}…"


class AppError(Exception):
    """A failure we anticipated. `public` is safe for the model; `context` goes to logs and audit only."""

    code: ClassVar[str] = "error"
    outcome: ClassVar[str] = "error"

    def __init__(self, public: str, /, **context: object) -> None:
        super().__init__(public)
        self.public = public
        self.context = context

    def details(self) -> dict[str, object]:
        """Machine-readable details a client may act on (the tool error's `_meta`)."""
        return {"code": self.code}


class InvalidInput(AppError):
    """Arguments that are well-typed but unacceptable (length, characters, ranges)."""

    code = "invalid_input"
    outcome = "invalid"


class NotFound(AppError):
    """No such object, or one the caller may not see (the two are indistinguishable on purpose)."""

    code = "not_found"


class Conflict(AppError):
    """A stale `expected_version`, an invalid transition, or a duplicate."""

    code = "conflict"


class PermissionDenied(AppError):
    """The caller lacks the scope, or the path is outside what policy allows."""

    code = "permission_denied"
    outcome = "denied"


class RateLimited(AppError):
    """A per-principal limit is exhausted; `retry_after_seconds` says when to try again."""

    code = "rate_limited"
    outcome = "rate_limited"

    def __init__(self, public: str, /, *, retry_after_seconds: float, **context: object) -> None:
        super().__init__(public, retry_after_seconds=retry_after_seconds, **context)
        self.retry_after_seconds = retry_after_seconds

    def details(self) -> dict[str, object]:
        """The code and when to retry."""
        return {"code": self.code, "retry_after_seconds": self.retry_after_seconds}


class LimitsUnavailable(RateLimited):
    """The shared counter store (Redis) did not answer, so no limit decision could be made: fail closed.

    Raised by the RateLimit and Budget guards before anything runs; the model sees
    "limits_unavailable: ..." with `retry_after_seconds`, and the call may simply be retried.
    """

    code = "limits_unavailable"


class BudgetExceeded(AppError):
    """The caller's daily context budget is spent."""

    code = "budget_exceeded"
    outcome = "budget"


class StorageUnavailable(AppError):
    """The store could not write (disk full, read-only volume): nothing was saved."""

    code = "storage_unavailable"


class ShuttingDown(AppError):
    """The server is draining and accepts no new calls."""

    code = "shutting_down"


class CommandRejected(AppError):
    """A diagnostic template or its parameters were refused before anything ran."""

    code = "command_rejected"
    outcome = "denied"


class ConfirmationRequired(AppError):
    """The policy requires the user's confirmation for this call and the client cannot ask for it: nothing ran."""

    code = "confirmation_required"
    outcome = "denied"


class MissingClientCapability(AppError):
    """The call needs a capability the client did not declare (a protocol error -32021, not a tool error)."""

    code = "missing_client_capability"
    outcome = "invalid"

    def __init__(self, public: str, /, *, required_capabilities: dict[str, object], **context: object) -> None:
        super().__init__(public, required_capabilities=required_capabilities, **context)
        self.required_capabilities = required_capabilities

    def details(self) -> dict[str, object]:
        """The JSON-RPC error data: which capabilities the client must declare."""
        return {"requiredCapabilities": self.required_capabilities}


class ConfigError(Exception):
    """Start-up configuration is invalid; the message names the key and how to fix it."""


def error_codes() -> tuple[str, ...]:
    """Every `AppError` subclass's code (the base's too), derived from the classes: the metrics' label set."""
    codes: dict[str, None] = {AppError.code: None}
    pending = list(AppError.__subclasses__())
    while pending:
        cls = pending.pop(0)
        codes[cls.code] = None
        pending.extend(cls.__subclasses__())
    return tuple(codes)


@dataclass(frozen=True, kw_only=True, slots=True)
class Rendered:
    """What a client reads of a failure: one message and machine-readable details (empty for unexpected ones)."""

    message: str
    details: dict[str, object] = field(default_factory=dict)


def render(exc: BaseException, *, tool: str | None = None) -> Rendered:
    """The client's view of any failure: `code: public` for an anticipated one, a generic message otherwise.

    An unexpected exception's text never reaches the client (it may hold paths, SQL or secrets): the
    message names only the tool, and the traceback goes to the logs.
    """
    if isinstance(exc, AppError):
        return Rendered(message=f"{exc.code}: {exc.public}", details=exc.details())
    return Rendered(message=f"Error executing tool {tool}" if tool else "Internal error")


def jsonrpc_error(message: str, *, code: int = -32600, request_id: str | int | None = None) -> dict[str, object]:
    """A JSON-RPC 2.0 error response (for refusals made before the SDK sees the request)."""
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}
