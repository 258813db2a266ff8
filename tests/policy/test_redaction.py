"""Redaction: a corpus of real-looking secrets that must go and look-alikes that must stay."""

from __future__ import annotations

import json
from typing import Any

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_desk.domain.principal import Principal
from mcp_desk.policy.keys import generate_key
from mcp_desk.policy.pipeline import ToolCall, ToolSpec
from mcp_desk.policy.redaction import Redact, Redactor, is_sensitive_key, scrub

pytestmark = pytest.mark.anyio
R = Redactor()
_JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
_PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq9ZmF3cGxlLWtleS1tYXRlcmlhbA\n"
    "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789==\n-----END RSA PRIVATE KEY-----"
)

# (text, secret that must disappear, expected kind)
SECRETS = [
    ("key sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_AbCdEfGh", "sk-ant-api03", "anthropic_key"),
    ("OPENAI=sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcd", "sk-proj-AbCd", "openai_key"),
    ("legacy sk-AbCdEfGhIjKlMnOpQrStT3BlbkFJAbCdEfGhIjKlMnOpQrSt", "T3BlbkFJ", "openai_key"),
    ("id AKIAIOSFODNN7EXAMPLE in use", "AKIAIOSFODNN7EXAMPLE", "aws_access_key"),
    ("session ASIAY34FZKBOKMUTVV7A", "ASIAY34FZKBOKMUTVV7A", "aws_access_key"),
    ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI", "secret"),
    ("token ghp_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", "ghp_AbCd", "github_token"),
    ("gho_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", "gho_", "github_token"),
    ("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789", "github_pat_11", "github_token"),
    ("slack xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp", "xoxb-1234", "slack_token"),
    ("hook https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX", "T00000000", "slack_token"),
    ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_4eC", "stripe_key"),
    ("restricted rk_live_4eC39HqLyjWDarjtT1zdp7dc", "rk_live_", "stripe_key"),
    ("maps AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW", "AIzaSyA1", "google_key"),
    ("gl glpat-AbCdEfGhIjKlMnOpQrSt", "glpat-AbCd", "gitlab_token"),
    ("npm npm_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", "npm_AbCd", "npm_token"),
    ("hf hf_AbCdEfGhIjKlMnOpQrStUvWxYz01234567", "hf_AbCd", "huggingface_token"),
    ("Authorization: Bearer abc.def-ghi_jkl~0123456789", "abc.def-ghi", "authorization"),
    ('{"headers": {"authorization": "Basic dXNlcjpwYXNzd29yZA=="}}', "dXNlcjpw", "authorization"),
    ("curl -H 'Authorization: token 0123456789abcdef0123'", "0123456789abcdef0123", "authorization"),
    ("use Bearer 9f8e7d6c5b4a39281706f5e4d3c2b1a0 for it", "9f8e7d6c5b4a3928", "bearer"),
    (f"cookie {_JWT}", "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c", "jwt"),
    ("password=hunter2", "hunter2", "password"),
    ("DB_PASSWORD = 'correct horse battery staple'", "correct horse", "password"),
    ('{"password": "hunter2"}', "hunter2", "password"),
    ('"{\\"password\\": \\"s3cr3t\\\\\\"x\\"}"', "s3cr3t", "password"),
    ("password: hunter2!", "hunter2", "password"),
    ("client_secret: 'abcDEF123'", "abcDEF123", "secret"),
    ("https://api.example.com/v1?api_key=AbC123xyz&x=1", "AbC123xyz", "secret"),
    ("api-key: 0f9e8d7c6b5a", "0f9e8d7c6b5a", "secret"),
    ("https://admin:Sup3rS3cret@intranet.example.com/path", "Sup3rS3cret", "password"),
    ("DATABASE_URL=postgres://app:p4ss@db.internal:5432/desk", "p4ss", "password"),
    ("postgresql://app:p%40ss@wrd9@db:5432/x", "wrd9", "password"),
    ("mysql://root:toor@127.0.0.1/mysql", "toor", "password"),
    ("redis://:r3disPass@cache:6379/0", "r3disPass", "password"),
    ("mongodb+srv://user:m0ng0Pw@cluster0.abcde.mongodb.net/db", "m0ng0Pw", "password"),
    (f"key file:\n{_PEM}\nend", "MIIEowIBAAKCAQEA", "private_key"),
    (
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n(truncated",
        "b3BlbnNzaC1rZXktdjEAAAAA",
        "private_key",
    ),
    ("SG.AbCdEfGhIjKlMnOpQr.StUvWxYz0123456789AbCdEf", "SG.AbCd", "sendgrid_key"),
]


@pytest.mark.parametrize(("text", "secret", "kind"), SECRETS)
def test_real_looking_secrets_are_redacted_with_their_kind(text: str, secret: str, kind: str) -> None:
    redacted = R.text(text)
    assert secret not in redacted
    assert f"[REDACTED:{kind}]" in redacted


def test_mcp_desk_keys_are_redacted() -> None:
    key = generate_key()
    assert R.text(f"use {key} please") == "use [REDACTED:mcp_desk_key] please"


LOOKALIKES = [
    "Ticket TCK-12345 is linked to TCK-12346.",
    "Fixed in commit 3f786850e387550fdab836ed7e6dc881de23001b and a94a8fe.",
    "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 of the empty file",
    "request 123e4567-e89b-12d3-a456-426614174000 failed",
    "base64 of hi is aGk= and of hello is aGVsbG8=",
    "The user asked for a password reset; send the password reset link.",
    "Forgot password: user cannot log in",
    "Passwords: must be 12 characters",
    "Token: expired",
    "See https://docs.example.com/runbooks/disk.md#step-2 and http://localhost:8000/mcp",
    "ssh git@github.com:org/repo.git",
    "mailto:alice@example.com",
    "output_tokens: 512, max_tokens=1024, token_count=3",
    '{"tokens": 5, "password_reset_sent": true, "secret": null}',
    "The bearer token expired yesterday.",
    "Payment authorization: pending",
    "task-ant-farm-is-a-long-compound-word-here",
    "sk-learn is not a key",
    "Priority: urgent; status: in_progress",
    "AKIA is a prefix, AKIASHORT too",
    "version 1.2.3, id note_01J8ZK5Q3W2X9Y7V6T5S4R3Q2P",
    "Authorization: [REDACTED:authorization]",
]


@pytest.mark.parametrize("text", LOOKALIKES)
def test_look_alikes_are_left_alone(text: str) -> None:
    assert R.text(text) == text


def test_redaction_is_idempotent() -> None:
    once = R.text(" ".join(text for text, _, _ in SECRETS))
    assert R.text(once) == once


def test_value_walks_nested_data_and_returns_new_objects() -> None:
    original: dict[str, Any] = {
        "title": "db creds",
        "body": "postgres://u:pw123@h/db",
        "meta": {"api_key": "abc", "password": "hunter2", "tags": ["sk_live_4eC39HqLyjWDarjtT1zdp7dc", 3]},
        "count": 2,
        "ok": True,
        "empty_secret": "",
        "nothing": None,
    }
    snapshot = json.loads(json.dumps(original))
    redacted = R.value(original)
    assert original == snapshot
    assert redacted["body"] == "postgres://u:[REDACTED:password]@h/db"
    assert redacted["meta"] == {
        "api_key": "[REDACTED:secret]",
        "password": "[REDACTED:password]",
        "tags": ["[REDACTED:stripe_key]", 3],
    }
    assert (redacted["count"], redacted["ok"], redacted["empty_secret"], redacted["nothing"]) == (2, True, "", None)


def test_scrub_applies_the_given_function_to_every_string_and_secret_named_keys() -> None:
    data = ({"Title": "abc", "token": "plain-looking", "n": [1, ("x", None)]},)
    assert scrub(data, str.upper) == [{"TITLE": "ABC", "TOKEN": "[REDACTED:secret]", "N": [1, ["X", None]]}]


def test_scrub_leaves_kept_fields_as_they_are() -> None:
    """Base64 payloads (prompt images, blobs) are copied, not scanned: a redaction would corrupt them."""
    image = {"type": "image", "data": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig", "mimeType": "image/png"}
    message = {"role": "user", "content": [image, {"type": "text", "text": f"see {_JWT}"}]}
    scrubbed = scrub(message, R.text, keep={"data"})
    assert scrubbed["content"][0] == image
    assert scrubbed["content"][1]["text"] == "see [REDACTED:jwt]"


def test_scrub_can_keep_only_the_first_items_of_lists() -> None:
    assert scrub({"tags": list(range(10)), "nested": [[1, 2, 3]]}, str, max_items=2) == {
        "tags": [0, 1],
        "nested": [[1, 2]],
    }


def test_secret_named_keys_are_recognised() -> None:
    assert all(map(is_sensitive_key, ["password", "DB_PASSWORD", "clientSecret", "x-api-key", "access_token", "pwd"]))
    assert not any(map(is_sensitive_key, ["tokens", "max_tokens", "idempotency_key", "title", "password_reset_at"]))


def test_process_log_redacts_a_structlog_event() -> None:
    processors: list[Any] = [R.process_log, structlog.testing.LogCapture()]
    capture = processors[-1]
    logger = structlog.wrap_logger(None, processors=processors)
    logger.info("called", authorization="Bearer 0123456789abcdefXYZ", detail="password=hunter2")
    assert capture.entries == [
        {
            "event": "called",
            "authorization": "[REDACTED:secret]",
            "detail": "password=[REDACTED:password]",
            "log_level": "info",
        }
    ]


def test_extra_patterns_are_applied() -> None:
    redactor = Redactor(extra_patterns=[("internal_id", r"\bINT-[0-9]{6}\b")])
    assert redactor.text("see INT-123456") == "see [REDACTED:internal_id]"


async def test_redact_guard_scrubs_the_result() -> None:
    async def endpoint(call: ToolCall) -> dict[str, Any]:
        return {"body": "password=hunter2"}

    async def tool() -> None: ...

    call = ToolCall(
        spec=ToolSpec(name="get_note", fn=tool, scope="notes:read"),
        principal=Principal(id="a", role="agent", scopes=frozenset()),
        arguments={},
        request_id="r1",
    )
    assert await Redact(R)(call, endpoint) == {"body": "password=[REDACTED:password]"}


def test_a_4kb_result_without_secrets_comes_back_as_it_is() -> None:
    """The common case on every read: one scan of its JSON, no walk and no copy (its cost is in bench/)."""
    prose = "Customer reports disk full on TCK-12345; see runbook disk.md. " * 8
    result: dict[str, Any] = {"items": [{"id": f"n{i}", "title": "note", "body": prose} for i in range(8)]}
    result["next_cursor"] = None
    assert R.value(result) is result


def test_a_result_with_one_secret_is_walked_and_copied() -> None:
    result: dict[str, Any] = {"items": [{"id": f"n{i}", "title": "note"} for i in range(8)], "next_cursor": None}
    result["items"][5]["body"] = "token ghp_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
    redacted = R.value(result)
    assert redacted["items"][5]["body"] == "token [REDACTED:github_token]"
    assert redacted["items"][:5] == result["items"][:5]
    assert result["items"][5]["body"].startswith("token ghp_")


def test_a_redactor_with_extra_patterns_walks_everything() -> None:
    """Operator patterns have no literals a scan could look for."""
    redactor = Redactor(extra_patterns=[("internal_id", r"\bINT-[0-9]{6}\b")])
    assert redactor.value({"items": [{"ref": "INT-123456"}]}) == {"items": [{"ref": "[REDACTED:internal_id]"}]}


# Pieces the generated data is made of: secrets, look-alikes, secret-named keys spelled in ways normalization
# undoes (separators, control characters, quotes, non-ASCII letters whose lowercase is ASCII), and characters
# JSON escapes.
_PIECES = [
    *(text for text, _, _ in SECRETS),
    *LOOKALIKES,
    "\u0130d token",  # LATIN CAPITAL LETTER I WITH DOT ABOVE
    "pa\u017fsword=hunter2",  # LATIN SMALL LETTER LONG S: matches "s" under IGNORECASE, lowercases to itself
    "\u03a3\u03a3 \u03c3\u03c2",
    "Bearer",
    " abcdef123456",
    "=",
    ": ",
    "\n",
    "\t",
    "\\",
    '"',
    "'",
    "eyJhbGciOiJIUzI1NiJ9",
    ".",
    "AKIA",
    "IOSFODNN7EXAMPLE",
    "://",
    "@",
    "[REDACTED:secret]",
]
# Secret-named keys, some spelled so that only their normalized name says so.
_SECRET_KEYS = [
    "password",
    "DB_PASSWORD",
    "x-api-key",
    "clientSecret",
    "pwd",
    "P-W-D",
    "pass\x01word",
    'pass"word',
    "pass\\word",
    "Pass\nWord",
    "to\u212aen",  # KELVIN SIGN lowercases to "k"
]
_TEXT = st.lists(st.one_of(st.sampled_from(_PIECES), st.text(max_size=8)), max_size=4).map("".join)
_KEYS = st.one_of(st.sampled_from([*_SECRET_KEYS, "id", "title", "items"]), st.text(max_size=8), _TEXT)
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), _TEXT)
_JSON_LIKE = st.recursive(
    _SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(_KEYS, children, max_size=4),
    ),
    max_leaves=24,
)


def _as_lists(obj: Any) -> Any:
    """What the walk returns for data it left unchanged: tuples become lists."""
    if isinstance(obj, dict):
        return {key: _as_lists(item) for key, item in obj.items()}
    if isinstance(obj, list | tuple):
        return [_as_lists(item) for item in obj]
    return obj


@pytest.mark.parametrize("key", _SECRET_KEYS)
def test_values_under_secret_named_keys_are_redacted_however_the_key_is_spelled(key: str) -> None:
    redacted = R.value({"items": [{"id": "n1", key: "plain-looking"}]})
    assert redacted["items"][0][key] in ("[REDACTED:password]", "[REDACTED:secret]")


@given(_JSON_LIKE)
@settings(max_examples=1500, deadline=None)
def test_value_equals_the_full_walk(obj: Any) -> None:
    """The scan of the JSON never lets through what the walk would redact."""
    assert _as_lists(R.value(obj)) == scrub(obj, R.text)
