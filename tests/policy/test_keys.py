"""API keys: format, keys file validation, verification and its caches."""

from __future__ import annotations

import io
import json
from pathlib import Path

import anyio
import pytest
from structlog.testing import capture_logs

from mcp_desk.errors import ConfigError
from mcp_desk.policy import keys as keys_module
from mcp_desk.policy.keyfile import append_line, create_exclusive
from mcp_desk.policy.keys import (
    KEY_PATTERN,
    KeyRecord,
    KeyStore,
    bootstrap_admin_key,
    command_keys_create,
    command_keys_list,
    command_keys_revoke,
    generate_key,
    key_line,
)

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


def _line(key: str, principal: str = "alice", role: str = "agent") -> str:
    return key_line(key, principal=principal, role=role) + "\n"


def test_a_store_follows_its_file_revoked_keys_are_refused_and_new_keys_accepted(tmp_path: Path) -> None:
    alice, bob = generate_key(), generate_key()
    path = tmp_path / "keys.txt"
    path.write_text(_line(alice))
    store = KeyStore.load(path, roles=ROLES)
    assert store.verify(alice) is not None
    assert store.verify(bob) is None
    append_line(path, _line(bob, "bob").strip())
    assert store.verify(bob) is not None
    assert command_keys_revoke(path, alice[5:17], io.StringIO()) == 0
    assert store.verify(alice) is None
    assert store.verify(bob) is not None
    assert len(store) == 1


def test_a_store_whose_file_disappears_accepts_no_key(tmp_path: Path) -> None:
    key = generate_key()
    path = tmp_path / "keys.txt"
    path.write_text(_line(key))
    store = KeyStore.load(path, roles=ROLES)
    assert store.verify(key) is not None
    path.unlink()
    assert store.verify(key) is None
    assert len(store) == 0


def test_a_file_that_stops_parsing_keeps_the_keys_loaded_before(tmp_path: Path) -> None:
    key, other = generate_key(), generate_key()
    path = tmp_path / "keys.txt"
    path.write_text(_line(key))
    store = KeyStore.load(path, roles=ROLES)
    with capture_logs() as logs:
        path.write_text(_line(key) + "not a valid line\n" + _line(other, "bob"))
        assert store.verify(key) is not None
        assert store.verify(other) is None
    assert [e["event"] for e in logs] == ["api_keys_reload_failed"]
    assert "keys.txt:2" in logs[0]["error"]


async def test_a_key_revoked_while_its_first_hash_runs_is_refused(tmp_path: Path) -> None:
    key = generate_key()
    path = tmp_path / "keys.txt"
    path.write_text(_line(key))
    store = KeyStore.load(path, roles=ROLES)
    stored, digest, cached = store._lookup(key)
    assert stored is not None
    assert digest is not None
    assert cached is None
    path.write_text("# no keys\n")
    assert len(store) == 0
    assert store._slow_verify(stored, key, digest) is None
    assert store.verify(key) is None


def test_append_creates_a_missing_file_with_mode_0600_and_completes_a_last_line(tmp_path: Path) -> None:
    path = tmp_path / "keys.txt"
    out = io.StringIO()
    assert command_keys_create("alice", "agent", True, out, roles=ROLES, append_to=path) == 0
    created = json.loads(out.getvalue())
    assert path.read_text() == created["line"] + "\n"
    assert path.stat().st_mode & 0o777 == 0o600
    path.write_text(path.read_text().rstrip("\n"))
    out = io.StringIO()
    assert command_keys_create("bob", "viewer", False, out, roles=ROLES, append_to=path) == 0
    assert "Added to" in out.getvalue()
    store = KeyStore.load(path, roles=ROLES)
    assert len(store) == 2
    assert store.verify(created["key"]) is not None


def test_append_into_a_folder_that_does_not_exist_is_a_clear_error(tmp_path: Path) -> None:
    err = io.StringIO()
    target = tmp_path / "missing" / "keys.txt"
    assert command_keys_create("alice", "agent", False, io.StringIO(), err=err, append_to=target) == 1
    assert f"cannot append to {target}" in err.getvalue()


def test_keys_list_shows_ids_principals_and_roles_never_hashes(tmp_path: Path) -> None:
    alice, bob = generate_key(), generate_key()
    path = tmp_path / "keys.txt"
    path.write_text("# header\n" + _line(alice) + _line(bob, "bob", "viewer"))
    out = io.StringIO()
    assert command_keys_list(path, True, out) == 0
    assert json.loads(out.getvalue()) == [
        {"key_id": alice[5:17], "principal": "alice", "role": "agent"},
        {"key_id": bob[5:17], "principal": "bob", "role": "viewer"},
    ]
    out = io.StringIO()
    assert command_keys_list(path, False, out) == 0
    rows = out.getvalue().splitlines()
    assert rows[0].split() == ["KEY_ID", "PRINCIPAL", "ROLE"]
    assert rows[2].split() == [bob[5:17], "bob", "viewer"]
    assert "$argon2" not in out.getvalue()
    out = io.StringIO()
    assert command_keys_list(tmp_path / "none.txt", True, out) == 0
    assert json.loads(out.getvalue()) == []


def test_keys_list_and_revoke_need_a_configured_file(tmp_path: Path) -> None:
    err = io.StringIO()
    assert command_keys_list(None, False, io.StringIO(), err=err) == 1
    assert command_keys_revoke(None, "0123456789ab", io.StringIO(), err=err) == 1
    assert err.getvalue().count("MCP_DESK_API_KEYS_FILE is not set") == 2


def test_revoke_removes_only_that_line_and_keeps_comments_and_mode(tmp_path: Path) -> None:
    alice, bob = generate_key(), generate_key()
    path = tmp_path / "keys.txt"
    kept = _line(bob, "bob")
    path.write_text("# header\n" + _line(alice) + kept)
    path.chmod(0o640)
    out = io.StringIO()
    assert command_keys_revoke(path, alice[5:17], out) == 0
    assert f"revoked {alice[5:17]}" in out.getvalue()
    assert path.read_text() == "# header\n" + kept
    assert path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keys.txt", "keys.txt.lock"]


@pytest.mark.parametrize(("key_id", "code", "message"), [("0123456789ab", 1, "no key with id"), ("x" * 500, 2, "")])
def test_revoke_of_an_unknown_or_malformed_id_changes_nothing(
    tmp_path: Path, key_id: str, code: int, message: str
) -> None:
    path = tmp_path / "keys.txt"
    text = "# header\n" + _line(generate_key())
    path.write_text(text)
    err = io.StringIO()
    assert command_keys_revoke(path, key_id, io.StringIO(), err=err) == code
    assert message in err.getvalue()
    assert len(err.getvalue()) < 200
    assert path.read_text() == text
    assert command_keys_revoke(tmp_path / "none.txt", "0123456789ab", io.StringIO(), err=err) == 1


def test_bootstrap_creates_one_admin_key_once_storing_only_its_hash(tmp_path: Path) -> None:
    path = tmp_path / "api_keys"
    key = bootstrap_admin_key(path)
    assert key is not None
    assert key not in path.read_text()
    assert path.stat().st_mode & 0o777 == 0o600
    record = KeyStore.load(path, roles=ROLES).verify(key)
    assert record == KeyRecord(principal="admin", role="admin", key_id=key[5:17])
    assert bootstrap_admin_key(path) is None
    assert [p.name for p in tmp_path.iterdir()] == ["api_keys"]


def test_bootstrap_never_replaces_an_existing_file_even_an_empty_one(tmp_path: Path) -> None:
    path = tmp_path / "api_keys"
    path.write_text("")
    assert bootstrap_admin_key(path) is None
    assert path.read_text() == ""
    assert not create_exclusive(path, "x\n")
    assert path.read_text() == ""
