"""Failures we anticipate and answer with a message a model can act on."""

from __future__ import annotations

from typing import ClassVar


class AppError(Exception):
    """A failure we anticipated. `public` is safe for the model; `context` goes to logs and audit only."""

    code: ClassVar[str] = "error"
    outcome: ClassVar[str] = "error"

    def __init__(self, public: str, /, **context: object) -> None:
        super().__init__(public)
        self.public = public
        self.context = context


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


class MissingClientCapability(AppError):
    """The call needs a capability the client did not declare (a protocol error -32021, not a tool error)."""

    code = "missing_client_capability"
    outcome = "invalid"

    def __init__(self, public: str, /, *, required_capabilities: dict[str, object], **context: object) -> None:
        super().__init__(public, required_capabilities=required_capabilities, **context)
        self.required_capabilities = required_capabilities


class ConfigError(Exception):
    """Start-up configuration is invalid; the message names the key and how to fix it."""
