"""Logging: structlog to stderr, with the stdlib (the `mcp` SDK, uvicorn) bridged into the same output.

stdout is the stdio transport, so nothing here ever writes to it. Every line passes the same
scrubbing: secrets redacted, pydantic `input_value`s dropped, SDK session ids shortened, SDK debug
lines that carry whole JSON-RPC messages cut, and uvicorn access lines logged without query strings.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Mapping
from typing import Literal, TextIO

import structlog
from structlog.stdlib import ProcessorFormatter
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, Processor, WrappedLogger

from mcp_desk.policy.redaction import scrub

__all__ = ["SessionIdFilter", "configure_logging", "install_session_id_filter", "shorten_session_ids"]

LogFormat = Literal["json", "console"]
Redact = Callable[[str], str]

# Loggers of libraries we run; their own handlers are removed so everything reaches ours.
BRIDGED_LOGGERS = ("mcp", "uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi", "sse_starlette", "httpx")
_LEVELS: Mapping[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
# Loggers whose own records carry session ids; a filter masks them for every handler, ours or not.
SESSION_ID_LOGGERS = ("mcp.server.streamable_http_manager", "mcp.server.streamable_http", "mcp.server.sse")
# A session id (uuid4 hex, what the SDK uses for Mcp-Session-Id, or a dashed UUID) where a session is named:
# "session ID: <id>", "Session <id> idle timeout", "session with ID: <id>", "mcp-session-id: <id>", "session_id=<id>".
# Hex elsewhere (trace ids, hashes, request ids) is not a session id and stays whole.
_SESSION_ID = re.compile(
    r"(?i)((?<![a-z])session(?:[ _-]?id)?(?:\s+(?:with|for)\s+id)?[\"']?\s*[:=]?\s*[\"']?)"
    r"([0-9a-f]{8})[0-9a-f-]{8,}(?![0-9a-z])"
)
_URL_QUERY = re.compile(r"(\b(?:https?|wss?)://[^\s?#\"']*)\?[^\s#\"']*")
_INPUT_VALUE = re.compile(r"input_value=.*?(?=, input_type=|\]$|\]\n|$)", re.MULTILINE)
# Library debug messages that embed a whole JSON-RPC message (arguments, results) after the colon.
_PAYLOAD_PREFIXES: Mapping[str, tuple[str, ...]] = {
    "mcp": (
        "Received JSON:",
        "Validated client message:",
        "Sending message via SSE:",
        "Sending session message to writer:",
        "Sending client message:",
    ),
    "sse_starlette": ("chunk:",),
}


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]  # StreamHandler is generic only in typeshed
    """Our root handler; marked by its class so a second configure_logging() replaces it."""


def shorten_session_ids(text: str) -> str:
    """Keep the first 8 characters of each session id in `text`: enough to correlate, not to reuse."""
    return _SESSION_ID.sub(r"\1\2…", text)


class SessionIdFilter(logging.Filter):
    """Shortens session ids in a library's records before any handler sees them (caplog, a host's handler)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the rendered message when it names a session id; always keeps the record."""
        message = record.getMessage()
        shortened = shorten_session_ids(message)
        if shortened != message:
            record.msg, record.args = shortened, None
        return True


def install_session_id_filter() -> None:
    """Attach `SessionIdFilter` to the loggers in `SESSION_ID_LOGGERS` (idempotent)."""
    for name in SESSION_ID_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, SessionIdFilter) for f in logger.filters):
            logger.addFilter(SessionIdFilter())


def _scrub_foreign(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Library records: drop query strings (access log, URLs), cut SDK payloads, shorten session ids."""
    record: logging.LogRecord | None = event_dict.get("_record")
    args = event_dict.pop("positional_args", ())
    name = record.name if record is not None else ""
    event = str(event_dict.get("event", ""))
    if name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
        client, method, path, version, status = args
        path = str(path).split("?", 1)[0]
        event = f'{client} - "{method} {path} HTTP/{version}" {status}'
        event_dict.update(http_method=method, path=path, status_code=status)
    else:
        prefixes = _PAYLOAD_PREFIXES.get(name.split(".", 1)[0], ())
        event = next((p + " <omitted>" for p in prefixes if event.startswith(p)), event)
    event_dict["event"] = shorten_session_ids(_URL_QUERY.sub(r"\1", event))
    return event_dict


def _scrubber(redact: Redact | None) -> Processor:
    """A processor that drops pydantic input values and applies `redact` to every string value."""

    def clean(text: str) -> str:
        text = _INPUT_VALUE.sub("input_value=<omitted>", text)
        return redact(text) if redact is not None else text

    def scrub_event(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        scrubbed: EventDict = scrub(event_dict, clean)
        return scrubbed

    return scrub_event


def _renderer(fmt: LogFormat, stream: TextIO) -> list[Processor]:
    if fmt == "json":
        tracebacks = structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))
        return [tracebacks, structlog.processors.JSONRenderer()]
    colors = bool(getattr(stream, "isatty", lambda: False)())
    return [structlog.processors.format_exc_info, structlog.dev.ConsoleRenderer(colors=colors)]


def configure_logging(
    level: str = "info", fmt: LogFormat = "json", *, redact: Redact | None = None, stream: TextIO | None = None
) -> None:
    """Route structlog and stdlib logging to `stream` (stderr by default); safe to call again."""
    levelno = _LEVELS.get(level.lower(), logging.INFO)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(levelno),
        cache_logger_on_first_use=False,
    )
    formatter = ProcessorFormatter(
        foreign_pre_chain=[*shared, _scrub_foreign],
        pass_foreign_args=True,
        processors=[ProcessorFormatter.remove_processors_meta, *_fmt_chain(fmt, redact, stream or sys.stderr)],
    )
    _install_handler(formatter, levelno, stream or sys.stderr)
    install_session_id_filter()


def _fmt_chain(fmt: LogFormat, redact: Redact | None, stream: TextIO) -> list[Processor]:
    render = _renderer(fmt, stream)
    # Exceptions are rendered first so that their text is scrubbed too, then the final renderer runs.
    return [*render[:-1], _scrubber(redact), render[-1]]


def _install_handler(formatter: logging.Formatter, levelno: int, stream: TextIO) -> None:
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
        old.close()
    handler = _Handler(stream)
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(levelno)
    for name in BRIDGED_LOGGERS:
        lib = logging.getLogger(name)
        lib.handlers.clear()
        lib.propagate = True
        lib.disabled = False
        lib.setLevel(logging.NOTSET)
