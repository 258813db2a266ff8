"""API keys: format, keys file validation, verification and its caches."""

from __future__ import annotations

import io
import json
from pathlib import Path

import anyio
import pytest

from mcp_desk.errors import ConfigError
from mcp_desk.policy import keys as keys_module
from mcp_desk.policy.keys import KEY_PATTERN, KeyRecord, KeyStore, command_keys_create, generate_key, key_line

pytestmark = pytest.mark.anyio
ROLES = ("viewer", "agent", "admin")


def _store(tmp_path: Path, *entries: tuple[str, str, str]) -> KeyStore:
    path = tmp_path / "keys.txt"
    path.write_text("# keys\n\n" + "".join(key_line(k, principal=p, role=r) + "\n" for k, p, r in entries))
    return KeyStore.load(path, roles=ROLES)


def test_generated_keys_have_the_prefix_an_id_and_256_bits_of_secret() -> None:
    key = generate_key()
    match = KEY_PATTERN.match(key)
    assert match is not None
    assert len(match.group(2)) == 43
    assert generate_key() != key


def test_keys_file_line_holds_only_an_argon2id_hash(tmp_path: Path) -> None:
    key = generate_key()
    line = key_line(key, principal="alice", role="agent")
    key_id, principal, role, hashed = line.split()
    assert (principal, role) == ("alice", "agent")
    assert key.startswith(f"mcpd_{key_id}_")
    assert hashed.startswith("$argon2id$")
    assert key.split("_", 2)[2] not in line


def test_a_valid_key_verifies_to_its_principal_and_role(tmp_path: Path) -> None:
    alice, bob = generate_key(), generate_key()
    store = _store(tmp_path, (alice, "alice", "agent"), (bob, "bob", "viewer"))
    record = store.verify(alice)
    assert record is not None
    assert (record.principal, record.role) == ("alice", "agent")
    assert store.verify(bob) == KeyRecord(principal="bob", role="viewer", key_id=bob[5:17])
    assert len(store) == 2


@pytest.mark.parametrize(
    "presented", ["", "Bearer x", "mcpd_", "mcpd_000000000000_" + "A" * 43, "x" * 10_000, "mcpd_zz_zz"]
)
def test_unknown_or_malformed_keys_are_refused(tmp_path: Path, presented: str) -> None:
    store = _store(tmp_path, (generate_key(), "alice", "agent"))
    assert store.verify(presented) is None


def test_a_wrong_secret_for_a_known_id_is_refused_and_remembered_boundedly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = generate_key()
    store = _store(tmp_path, (key, "alice", "agent"))
    monkeypatch.setattr(keys_module, "FAILED_CACHE_SIZE", 3)
    wrong = [key[:18] + generate_key()[18:] for _ in range(5)]
    for candidate in wrong:
        assert store.verify(candidate) is None
    assert store.verify(wrong[-1]) is None
    assert len(store._failed) == 3
    assert store.verify(key) is not None


def test_a_verified_key_is_cached_without_keeping_the_raw_key(tmp_path: Path) -> None:
    key = generate_key()
    store = _store(tmp_path, (key, "alice", "agent"))
    assert store.verify(key) is not None
    assert len(store._verified) == 1
    assert all(key.encode() not in digest for digest in store._verified)
    assert store.verify(key) is not None
    assert len(store._verified) == 1


async def test_verify_async_matches_verify(tmp_path: Path) -> None:
    key = generate_key()
    store = _store(tmp_path, (key, "alice", "admin"))
    first = await store.verify_async(key)
    assert first is not None
    assert first.role == "admin"
    assert await store.verify_async(key) == first
    assert await store.verify_async(key[:-1] + ("A" if key[-1] != "A" else "B")) is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("abc", "expected 4 fields"),
        ("0123456789ab alice agent", "expected 4 fields"),
        ("XYZ alice agent $argon2id$x", "key id"),
        ("0123456789ab al/ice agent $argon2id$x", "principal"),
        ("0123456789ab alice root $argon2id$x", "unknown role 'root'"),
        ("0123456789ab alice agent sha256:abc", "argon2id"),
    ],
)
def test_a_bad_keys_file_line_is_a_config_error_naming_the_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "keys.txt"
    path.write_text(f"# header\n{line}\n")
    with pytest.raises(ConfigError, match=rf"keys.txt:2: .*{message}"):
        KeyStore.load(path, roles=ROLES)


def test_duplicate_key_ids_and_unreadable_files_are_config_errors(tmp_path: Path) -> None:
    key = generate_key()
    path = tmp_path / "keys.txt"
    line = key_line(key, principal="a", role="agent")
    path.write_text(f"{line}\n{line}\n")
    with pytest.raises(ConfigError, match=r"keys\.txt:2: duplicate"):
        KeyStore.load(path)
    with pytest.raises(ConfigError, match="MCP_DESK_API_KEYS_FILE"):
        KeyStore.load(tmp_path / "missing.txt")


def test_keys_create_json_prints_a_key_that_the_printed_line_verifies(tmp_path: Path) -> None:
    out = io.StringIO()
    assert command_keys_create("alice", "agent", True, out, roles=ROLES) == 0
    printed = json.loads(out.getvalue())
    assert set(printed) == {"key", "principal", "role", "line"}
    path = tmp_path / "keys.txt"
    path.write_text(printed["line"] + "\n")
    record = KeyStore.load(path, roles=ROLES).verify(printed["key"])
    assert record is not None
    assert record.principal == "alice"


def test_keys_create_text_prints_labelled_lines() -> None:
    out = io.StringIO()
    assert command_keys_create("bob", "viewer", False, out) == 0
    labels = [line.split(":", 1)[0] for line in out.getvalue().splitlines() if not line.startswith("#")]
    assert labels == ["key", "principal", "role", "line"]


def test_keys_create_refuses_bad_principal_or_unknown_role() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert command_keys_create("a b", "agent", False, out, err=err) == 2
    assert command_keys_create("alice", "root", False, out, roles=ROLES, err=err) == 2
    assert out.getvalue() == ""
    assert "unknown role 'root'" in err.getvalue()


async def test_concurrent_first_uses_of_a_key_share_one_verification(tmp_path: Path) -> None:
    key = generate_key()
    store = _store(tmp_path, (key, "alice", "admin"))
    results = []

    async def verify() -> None:
        results.append(await store.verify_async(key))

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(verify)
    assert len(results) == 8
    assert all(r is not None and r.principal == "alice" for r in results)
    assert not store._hashing
