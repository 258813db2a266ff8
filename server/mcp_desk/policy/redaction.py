"""Redaction: replace secrets with `[REDACTED:kind]` on every way out (results, errors, logs, audit).

Stored data stays as written. Patterns are compiled once per `Redactor`; `text` runs them in a fixed
order (private keys and URLs first, so a key inside a connection string is redacted as one piece).
`scrub` is the one walk over JSON-like data (results, resources, prompts, audit records, log events):
it returns new objects and takes the string function to apply, so `Redactor.value` and the log
scrubber share it; `process_log` is a structlog processor. `Redactor.value` first scans the data's
compact JSON once (`_Screen`) and hands it back as it is when nothing in it could be redacted.
Provider patterns are anchored on documented prefixes and lengths, and generic `name=value` rules
skip values that cannot be secrets (only digits, plain words after `:`), so ticket numbers, hashes,
UUIDs and prose about passwords survive.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Collection, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson

from mcp_desk.policy.keys import KEY_PREFIX
from mcp_desk.policy.pipeline import Next, ToolCall

Replacer = Callable[[re.Match[str]], str]

_LABEL_PATTERN = (
    r"(?:[A-Za-z0-9]+[_.-])*(?:password|passwd|pwd|passphrase|secret|api[_-]?key|apikey|access[_-]?key"
    r"|secret[_-]?key|private[_-]?key|token|credentials?)"
)
_PASSWORD_WORDS = ("password", "passwd", "pwd", "passphrase")
_SENSITIVE_SUFFIXES = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "apikey",
    "accesskey",
    "secretkey",
    "privatekey",
    "token",
    "credential",
    "credentials",
    "authorization",
    "cookie",
)

# (kind, pattern, literals one of which every match contains, in its case) where the whole match is the secret.
_AWS_PREFIXES = ("AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AIPA", "ANPA", "ANVA", "AROA", "APKA")
_WHOLE: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("jwt", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*", (".eyJ",)),
    ("anthropic_key", r"\bsk-ant-[A-Za-z0-9_-]{20,}", ("sk-ant-",)),
    ("openai_key", r"\bsk-(?:proj|svcacct|admin|None)-[A-Za-z0-9_-]{20,}|\bsk-[A-Za-z0-9]{32,}\b", ("sk-",)),
    ("aws_access_key", rf"\b(?:{'|'.join(_AWS_PREFIXES)})[A-Z0-9]{{16}}\b", _AWS_PREFIXES),
    (
        "github_token",
        r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,255}\b|\bgithub_pat_[A-Za-z0-9_]{22,255}\b",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    ("gitlab_token", r"\bglpat-[A-Za-z0-9_-]{20,}", ("glpat-",)),
    (
        "slack_token",
        r"\bxox[abposre]-[A-Za-z0-9-]{10,}|https://hooks\.slack\.com/services/[A-Za-z0-9/_-]+",
        ("xox", "hooks.slack.com"),
    ),
    (
        "stripe_key",
        r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}\b|\bwhsec_[A-Za-z0-9]{24,}\b",
        ("sk_", "rk_", "whsec_"),
    ),
    ("google_key", r"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])|\bya29\.[0-9A-Za-z_-]{20,}", ("AIza", "ya29.")),
    ("npm_token", r"\bnpm_[A-Za-z0-9]{36}\b", ("npm_",)),
    ("pypi_token", r"\bpypi-[A-Za-z0-9_-]{50,}", ("pypi-",)),
    ("huggingface_token", r"\bhf_[A-Za-z0-9]{30,}\b", ("hf_",)),
    ("sendgrid_key", r"\bSG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}", ("SG.",)),
    ("mcp_desk_key", rf"\b{KEY_PREFIX}[A-Za-z0-9_-]{{16,}}", (KEY_PREFIX,)),
)
_NAME_TRIGGERS = (
    "passw",
    "pwd",
    "passphrase",
    "secret",
    "apikey",
    "api_key",
    "api-key",
    "accesskey",
    "access_key",
    "access-key",
    "privatekey",
    "private_key",
    "private-key",
    "token",
    "credential",
)
MIN_SECRET_TEXT = 6


@dataclass(frozen=True, slots=True)
class _Rule:
    """A pattern, its replacement, and what a text must contain for it to run.

    `triggers`: lowercase literals, one of which the lowercased text holds (checked before the pattern runs).
    `cased`: literals every match contains as they are (case-sensitive patterns); `_Screen` looks for them.
    """

    pattern: re.Pattern[str]
    replace: Replacer
    triggers: tuple[str, ...]
    cased: tuple[str, ...] = ()

    def applies(self, lowered: str) -> bool:
        return not self.triggers or any(trigger in lowered for trigger in self.triggers)


def _marker(kind: str) -> str:
    return f"[REDACTED:{kind}]"


def _is_plausible_secret(value: str, *, loose: bool) -> bool:
    """Reject values that are numbers, placeholders or (for `name: word` prose) plain words."""
    if value.startswith("[REDACTED") or value.isdigit() or value.lower() in {"null", "none", "true", "false"}:
        return False
    return not (loose and value.isalpha())


def _pem(match: re.Match[str]) -> str:
    return _marker("private_key")


def _url_password(match: re.Match[str]) -> str:
    return f"{match.group('head')}{_marker('password')}@"


def _auth_header(match: re.Match[str]) -> str:
    if match.group("scheme") is None and not _is_plausible_secret(match.group("value"), loose=True):
        return match.group(0)
    return f"{match.group('head')}{_marker('authorization')}"


def _bearer(match: re.Match[str]) -> str:
    token = match.group("value")
    if token.isalpha() or token.startswith("[REDACTED"):
        return match.group(0)
    return f"{match.group('head')}{_marker('bearer')}"


def _name_kind(name: str) -> str:
    return "password" if any(word in name.lower() for word in _PASSWORD_WORDS) else "secret"


def _quoted_pair(match: re.Match[str]) -> str:
    value = match.group("value")
    if not _is_plausible_secret(value, loose=False):
        return match.group(0)
    return f"{match.group('head')}{_marker(_name_kind(match.group('name')))}{match.group('q')}"


def _unquoted_pair(match: re.Match[str]) -> str:
    value = match.group("value")
    if not _is_plausible_secret(value, loose=match.group("sep") == ":"):
        return match.group(0)
    return f"{match.group('head')}{_marker(_name_kind(match.group('name')))}"


def _whole(kind: str) -> Replacer:
    marker = _marker(kind)
    return lambda _match: marker


def _compile_rules(extra: Iterable[tuple[str, str]]) -> list[_Rule]:
    pem = r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----|\Z)"
    url = r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]{1,20}://[^\s:/?#@\[\]\"']*:)(?P<pw>[^\s/?#\"']+)@"
    header = (
        r"(?i)(?P<head>\b(?:proxy-)?authorization\\?[\"']?\s*[:=]\s*\\?[\"']?)"
        r"(?P<scheme>(?:bearer|basic|token|digest)\s+)?(?P<value>[^\s\"'\\,;]+)"
    )
    bearer = r"(?i)(?P<head>\bbearer\s+)(?P<value>[A-Za-z0-9._~+/-]{12,}=*)"
    quoted = (
        rf"(?i)(?P<head>(?<![A-Za-z0-9])(?P<name>{_LABEL_PATTERN})\\?[\"']?\s*[:=]\s*(?P<q>\\?[\"']))"
        r"(?P<value>(?:\\.|[^\"'\\\r\n]){1,512}?)(?P=q)"
    )
    unquoted = (
        rf"(?i)(?P<head>(?<![A-Za-z0-9])(?P<name>{_LABEL_PATTERN})\\?[\"']?\s*(?P<sep>[:=])\s*)"
        r"(?P<value>[^\s\"'\\&,;<>()\[\]{}]{3,256})"
    )
    rules = [
        _Rule(re.compile(pem), _pem, ("private key",)),
        _Rule(re.compile(url), _url_password, ("://",), ("://",)),
        _Rule(re.compile(header), _auth_header, ("authorization",)),
    ]
    rules += [
        _Rule(re.compile(pattern), _whole(kind), tuple(c.lower() for c in cased), cased)
        for kind, pattern, cased in _WHOLE
    ]
    rules += [_Rule(re.compile(pattern), _whole(kind), ()) for kind, pattern in extra]
    rules += [
        _Rule(re.compile(bearer), _bearer, ("bearer",)),
        _Rule(re.compile(quoted), _quoted_pair, _NAME_TRIGGERS),
        _Rule(re.compile(unquoted), _unquoted_pair, _NAME_TRIGGERS),
    ]
    return rules


def scrub(obj: Any, text: Callable[[str], str], *, keep: Collection[str] = (), max_items: int | None = None) -> Any:
    """The one redaction walk: a copy of JSON-like `obj` with every string (keys too) passed through `text`.

    A non-empty string under a secret-named key (`is_sensitive_key`) is replaced whatever it looks
    like; values under a key in `keep` (binary payloads) are copied as they are; `max_items` keeps
    only the first items of every list. Tuples become lists; other values are returned unchanged.
    """
    if isinstance(obj, str):
        return text(obj)
    if isinstance(obj, Mapping):
        return {scrub(key, text): _field(key, item, text, keep, max_items) for key, item in obj.items()}
    if isinstance(obj, list | tuple):
        items = obj if max_items is None else obj[:max_items]
        return [scrub(item, text, keep=keep, max_items=max_items) for item in items]
    return obj


def _field(key: object, item: Any, text: Callable[[str], str], keep: Collection[str], max_items: int | None) -> Any:
    if isinstance(key, str):
        if key in keep:
            return item
        if isinstance(item, str) and item and is_sensitive_key(key):
            return item if item.startswith("[REDACTED") else _marker(_name_kind(key))
    return scrub(item, text, keep=keep, max_items=max_items)


# The bytes a normalized key name keeps (lowercase ASCII letters and digits), and one escape of compact JSON.
_NOT_ALNUM = bytes(b for b in range(256) if not (0x30 <= b <= 0x39 or 0x61 <= b <= 0x7A))
_JSON_ESCAPE = re.compile(rb"\\(?:u[0-9a-f]{4}|.)")
# What the normalized name of a secret-named key contains (`is_sensitive_key`: "pwd", or ending with a suffix).
_KEY_TRIGGERS = ("pwd", "passw", *_SENSITIVE_SUFFIXES)

Finder = Callable[[bytes], object]


def _json_shape(obj: Any) -> Any:
    """orjson's fallback: what `scrub` walks becomes a dict or a list, anything it leaves alone becomes null."""
    if isinstance(obj, Mapping):
        return dict(obj.items())
    if isinstance(obj, list | tuple):
        return list(obj)
    return None


def _finders(literals: Iterable[str]) -> tuple[Finder, ...]:
    """Searches for any of `literals`: one regex per first character, the others' shared prefix factored out.

    sre scans for a pattern's literal first character in C; 20 such scans of a 20-note list result
    cost 2 µs each, where `literal in text` cost 3-4 µs for each 3-4 character literal (bench/redaction_cost).
    """
    unique = {literal for literal in literals if not any(o != literal and o in literal for o in literals)}
    groups: dict[str, list[str]] = {}
    for literal in sorted(unique):
        groups.setdefault(literal[0], []).append(re.escape(literal))
    return tuple(re.compile("|".join(group).encode()).search for group in groups.values())


class _Screen:
    """One scan of a value's compact JSON that proves `scrub(value, redactor.text)` would change nothing.

    Sound, not exact: clean data may be sent to the walk (prose that says "token"), data with something
    to redact never skips it. A rule changes a string only if its pattern matches and (its gate) the
    lowercased string holds one of its triggers:
    - a case-sensitive rule's `cased` literals are part of every match, and JSON keeps them unchanged
      (none holds a quote, a backslash or a control character): they are looked for in the JSON as it is;
    - any other rule's triggers, and the names of secret-named keys, are looked for in the JSON lowercased,
      with its escapes and every byte but `[a-z0-9]` dropped: that "squeezed" JSON holds the squeezed
      form of anything any string or key holds ("api_key" as "apikey", a key's normalized name whole).
    Extra (operator) patterns have no literals: a `Redactor` with any has no screen.
    """

    def __init__(self, rules: Iterable[_Rule]) -> None:
        cased: set[str] = set()
        squeezed = set(_KEY_TRIGGERS)
        for rule in rules:
            if rule.cased:
                cased.update(rule.cased)
            else:
                squeezed.update(re.sub(r"[^a-z0-9]", "", trigger) for trigger in rule.triggers)
        self.cased = _finders(cased)
        self.squeezed = _finders(squeezed)

    def clean(self, obj: Any) -> bool:
        """True when nothing in `obj` can be redacted (False also when it is not JSON: the walk decides)."""
        try:
            data = orjson.dumps(obj, default=_json_shape, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:
            return False
        if any(find(data) for find in self.cased):
            return False
        lowered = data.lower() if data.isascii() else data.decode().lower().encode()
        if b"\\" in lowered:
            lowered = _JSON_ESCAPE.sub(b"", lowered)
        squeezed = lowered.translate(None, _NOT_ALNUM)
        return not any(find(squeezed) for find in self.squeezed)


# Cached: worth 20.6% of the guard chain's CPU on a 20-note list result (bench/pipeline_cost chain, A/B).
@functools.lru_cache(maxsize=1024)
def is_sensitive_key(name: str) -> bool:
    """True for mapping keys whose string values are secrets whatever they look like."""
    normalized = re.sub(r"[^a-z0-9]", "", name.lower())
    return normalized == "pwd" or normalized.endswith(_SENSITIVE_SUFFIXES)


class Redactor:
    """Compiled secret patterns; `text`, `value` and `process_log` return scrubbed data."""

    def __init__(self, extra_patterns: Iterable[tuple[str, str]] = ()) -> None:
        self._rules = _compile_rules(extra_patterns)
        # Fast path: one scan for every rule's trigger literals. Text without any of them (most results)
        # can only match the rules that have no triggers (operator patterns), so only those run.
        # Worth 23.5% of the guard chain's CPU per get_note-shaped call, 9.6% per write (bench/pipeline_cost, A/B).
        self._triggers = tuple(sorted({t for rule in self._rules for t in rule.triggers}))
        self._untriggered = [rule for rule in self._rules if not rule.triggers]
        self._screen = None if self._untriggered else _Screen(self._rules)

    def text(self, s: str) -> str:
        """`s` with every secret replaced by `[REDACTED:kind]`."""
        if len(s) < MIN_SECRET_TEXT:
            return s
        lowered = s.lower()
        rules = self._rules if any(map(lowered.__contains__, self._triggers)) else self._untriggered
        for rule in rules:
            if rule.applies(lowered):
                s = rule.pattern.sub(rule.replace, s)
        return s

    def value(self, obj: Any) -> Any:
        """JSON-like data redacted: strings scrubbed, values under secret-named keys replaced, in a copy.

        Data with nothing to redact (most results) comes back as it is, not copied: one scan of its JSON
        decides it instead of the walk: 32 µs of CPU instead of 385 µs for a 20-note list result, and a
        result with something to redact pays about 20 µs more (bench/redaction_cost).
        """
        if self.clean(obj):
            return obj
        return scrub(obj, self.text)

    def clean(self, obj: Any) -> bool:
        """True when `value(obj)` would change nothing: one scan of its JSON (False: it may have to)."""
        return self._screen is not None and self._screen.clean(obj)

    def process_log(self, logger: object, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
        """structlog processor: place it after `format_exc_info`/`dict_tracebacks`, before the renderer."""
        return self.value(event_dict)


@dataclass(frozen=True, slots=True)
class Redact:
    """Guard: scrub the tool's result on its way out (errors are redacted where they are rendered)."""

    redactor: Redactor

    async def __call__(self, call: ToolCall, call_next: Next) -> Any:
        """Run the rest of the chain and return a redacted copy of its result."""
        result = await call_next(call)
        return self.redactor.value(result)
