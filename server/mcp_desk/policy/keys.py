"""API keys: generate them, store only argon2id hashes, and verify presented keys quickly.

Key format: `mcpd_<key_id>_<secret>`: `key_id` is 12 hex characters (public, used to find the
record), `secret` is 32 random bytes in URL-safe base64 (256 bits). The prefix lets redaction
recognise a leaked key anywhere.

Keys file (`MCP_DESK_API_KEYS_FILE`): UTF-8 text, one key per line, four fields separated by
whitespace: `key_id principal role argon2id-hash`. Blank lines and lines starting with `#` are
ignored. The hash covers the whole presented key, so the id cannot be paired with another secret.

Hot path: the argon2 hash runs once per key per process. A successful verification is cached under
an HMAC of the presented key with a per-process secret (the raw key is never kept); failures are
remembered in a small LRU (bounded, so an attacker cannot grow memory) so a replayed bad key costs
one dict lookup. Keys whose id is unknown are refused without hashing. Concurrent first uses of
one key share a single hash.

Changes take effect while the server runs: before each lookup the store compares the file's
identity (inode, size, modification time: one `stat`, no read) with what it loaded, and re-reads
the file only when that changed. A removed key is refused from the next request on; a file that
disappears leaves no valid key; a file that no longer parses is reported in the log and the keys
loaded before stay in force (so a typo never locks every client out).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import re
import secrets
import sys
from collections import OrderedDict
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import anyio.to_thread
import structlog

from mcp_desk.errors import ConfigError
from mcp_desk.policy import keyfile

if TYPE_CHECKING:
    from argon2 import PasswordHasher

KEY_PREFIX = "mcpd_"
KEY_PATTERN = re.compile(r"^mcpd_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MAX_PRESENTED_CHARS = 128
FAILED_CACHE_SIZE = 1024
Signature = tuple[int, int, int, int]

log = structlog.get_logger()


@dataclass(frozen=True, kw_only=True, slots=True)
class KeyRecord:
    """Who a verified key belongs to."""

    principal: str
    role: str
    key_id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class _StoredKey:
    record: KeyRecord
    hash: str


def generate_key() -> str:
    """A new API key: `mcpd_<12 hex id>_<43 chars of base64url secret>`."""
    return f"{KEY_PREFIX}{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"


@functools.cache
def _hasher() -> PasswordHasher:
    """argon2, imported on first use: a server without API keys (stdio) never loads it (5-9 ms, `-X importtime`).

    OWASP's argon2id floor (19 MiB, t=2, p=1): the secret has 256 bits, so the hash guards a
    leaked keys file, not a weak password; ~20 ms per hash, once per key per process.
    """
    from argon2 import PasswordHasher

    return PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def hash_key(key: str) -> str:
    """The argon2id hash stored in the keys file."""
    return _hasher().hash(key)


def key_line(key: str, *, principal: str, role: str) -> str:
    """The keys-file line for `key` (hashes it)."""
    match = KEY_PATTERN.match(key)
    if match is None:
        raise ValueError("not an mcp-desk key")
    return f"{match.group(1)} {principal} {role} {hash_key(key)}"


class KeyStore:
    """The configured keys, by id; `verify` maps a presented bearer key to its record or None.

    A store loaded from a file (`load`) follows that file's changes; one built from a mapping is fixed.
    """

    def __init__(
        self,
        keys: Mapping[str, _StoredKey] | None = None,
        *,
        source: Path | None = None,
        roles: Collection[str] | None = None,
    ) -> None:
        self._keys = dict(keys or {})
        self._source = source
        self._roles = roles
        self._signature = _signature(source) if source is not None else None
        self._secret = secrets.token_bytes(32)
        self._verified: dict[bytes, KeyRecord] = {}
        self._failed: OrderedDict[bytes, None] = OrderedDict()
        self._hashing: dict[bytes, anyio.Event] = {}

    @classmethod
    def load(cls, path: Path, *, roles: Collection[str] | None = None) -> KeyStore:
        """Read and validate a keys file; any bad line is a ConfigError naming file and line."""
        signature = _signature(path)
        store = cls(_read_keys(path, roles=roles), source=path, roles=roles)
        store._signature = signature  # what was read, even if the file changed since: the next lookup re-reads
        return store

    def __len__(self) -> int:
        self._refresh()
        return len(self._keys)

    def _refresh(self) -> None:
        """Re-read the source file if it changed since it was loaded (one stat when it did not)."""
        if self._source is None:
            return
        signature = _signature(self._source)
        if signature == self._signature:
            return
        self._signature = signature
        if signature is None:
            log.warning("api_keys_file_missing", path=str(self._source), keys=0)
            self._replace({})
            return
        try:
            keys = _read_keys(self._source, roles=self._roles)
        except ConfigError as exc:
            log.error("api_keys_reload_failed", error=str(exc), keys=len(self._keys))
            return
        self._replace(keys)
        log.info("api_keys_reloaded", keys=len(keys))

    def _replace(self, keys: dict[str, _StoredKey]) -> None:
        old = self._keys
        self._keys = keys
        self._verified = {d: r for d, r in self._verified.items() if keys.get(r.key_id) == old.get(r.key_id)}
        self._failed.clear()

    def verify(self, presented: str) -> KeyRecord | None:
        """The record for a valid key, else None; slow only the first time a given key is seen."""
        stored, digest, cached = self._lookup(presented)
        if stored is None or digest is None:
            return cached
        return self._slow_verify(stored, presented, digest)

    async def verify_async(self, presented: str) -> KeyRecord | None:
        """`verify` with the one-off slow hash moved to a worker thread (for the event loop).

        Single flight: requests presenting the same new key while its hash runs wait for that one hash
        (a client opening 32 connections at once costs one argon2 run, not 32).
        """
        stored, digest, cached = self._lookup(presented)
        if stored is None or digest is None:
            return cached
        running = self._hashing.get(digest)
        if running is not None:
            await running.wait()
            return self._verified.get(digest)
        self._hashing[digest] = done = anyio.Event()
        try:
            return await anyio.to_thread.run_sync(self._slow_verify, stored, presented, digest)
        finally:
            del self._hashing[digest]
            done.set()

    def _lookup(self, presented: str) -> tuple[_StoredKey | None, bytes | None, KeyRecord | None]:
        self._refresh()
        if len(presented) > MAX_PRESENTED_CHARS:
            return None, None, None
        match = KEY_PATTERN.match(presented)
        stored = self._keys.get(match.group(1)) if match else None
        if stored is None:
            return None, None, None
        digest = hmac.new(self._secret, presented.encode(), hashlib.sha256).digest()
        if digest in self._verified:
            return None, None, self._verified[digest]
        if digest in self._failed:
            self._failed.move_to_end(digest)
            return None, None, None
        return stored, digest, None

    def _slow_verify(self, stored: _StoredKey, presented: str, digest: bytes) -> KeyRecord | None:
        from argon2.exceptions import InvalidHashError, VerificationError

        try:
            _hasher().verify(stored.hash, presented)
        except (VerificationError, InvalidHashError):
            self._failed[digest] = None
            while len(self._failed) > FAILED_CACHE_SIZE:
                self._failed.popitem(last=False)
            return None
        if self._keys.get(stored.record.key_id) != stored:  # revoked or replaced while the hash ran
            return None
        self._verified[digest] = stored.record
        return stored.record


def _signature(path: Path) -> Signature | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError:
        return (-1, -1, -1, -1)  # unreadable now: differs from any real file, so the read reports why
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _read_keys(path: Path, *, roles: Collection[str] | None) -> dict[str, _StoredKey]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"MCP_DESK_API_KEYS_FILE: cannot read {path}: {exc.__class__.__name__}") from None
    keys: dict[str, _StoredKey] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line and not line.startswith("#"):
            stored = _parse_line(line, where=f"{path}:{number}", roles=roles)
            if stored.record.key_id in keys:
                raise ConfigError(f"{path}:{number}: duplicate key id {stored.record.key_id}")
            keys[stored.record.key_id] = stored
    return keys


def _parse_line(line: str, *, where: str, roles: Collection[str] | None) -> _StoredKey:
    fields = line.split()
    if len(fields) != 4:
        raise ConfigError(f"{where}: expected 4 fields 'key_id principal role hash', found {len(fields)}")
    key_id, principal, role, hashed = fields
    if not re.fullmatch(r"[0-9a-f]{12}", key_id):
        raise ConfigError(f"{where}: key id must be 12 lowercase hex characters")
    if not NAME_PATTERN.match(principal):
        raise ConfigError(f"{where}: principal must match {NAME_PATTERN.pattern}")
    if roles is not None and role not in roles:
        raise ConfigError(f"{where}: unknown role {role!r} (known: {', '.join(sorted(roles))})")
    if not hashed.startswith("$argon2id$"):
        raise ConfigError(f"{where}: hash must be an argon2id hash from `mcp-desk keys create`")
    return _StoredKey(record=KeyRecord(principal=principal, role=role, key_id=key_id), hash=hashed)


def command_keys_create(
    principal: str,
    role: str,
    as_json: bool,
    out: TextIO,
    *,
    roles: Collection[str] | None = None,
    err: TextIO = sys.stderr,
    append_to: Path | None = None,
) -> int:
    """`mcp-desk keys create`: print a new key once and the keys-file line holding only its hash.

    With `append_to` the line is also added to that file (created with mode 0600 if missing).
    """
    if not NAME_PATTERN.match(principal):
        err.write(f"error: --principal must match {NAME_PATTERN.pattern}\n")
        return 2
    if not NAME_PATTERN.match(role) or (roles is not None and role not in roles):
        known = f" (known: {', '.join(sorted(roles))})" if roles is not None else ""
        err.write(f"error: unknown role {role!r}{known}\n")
        return 2
    key = generate_key()
    line = key_line(key, principal=principal, role=role)
    if append_to is not None:
        try:
            with keyfile.locked(append_to):
                keyfile.append_line(append_to, line)
        except OSError as exc:
            err.write(f"error: cannot append to {append_to}: {exc.strerror or exc.__class__.__name__}\n")
            return 1
    if as_json:
        out.write(json.dumps({"key": key, "principal": principal, "role": role, "line": line}) + "\n")
        return 0
    out.write(f"key: {key}\nprincipal: {principal}\nrole: {role}\nline: {line}\n")
    if append_to is not None:
        out.write(f"# Added to {append_to}; running servers accept the key now. It is shown only this once.\n")
    else:
        out.write("# Append `line` to MCP_DESK_API_KEYS_FILE (or use --append). The key is shown only this once.\n")
    return 0


def command_keys_list(path: Path | None, as_json: bool, out: TextIO, *, err: TextIO = sys.stderr) -> int:
    """`mcp-desk keys list`: key ids, principals and roles of the keys file (never the hashes)."""
    if path is None:
        err.write("error: MCP_DESK_API_KEYS_FILE is not set\n")
        return 1
    if not path.exists():
        records: list[KeyRecord] = []
    else:
        records = [stored.record for stored in _read_keys(path, roles=None).values()]
    if as_json:
        rows = [{"key_id": r.key_id, "principal": r.principal, "role": r.role} for r in records]
        out.write(json.dumps(rows) + "\n")
        return 0
    out.write(f"{'KEY_ID':<14}{'PRINCIPAL':<32}ROLE\n")
    for r in records:
        out.write(f"{r.key_id:<14}{r.principal:<32}{r.role}\n")
    return 0


def command_keys_revoke(path: Path | None, key_id: str, out: TextIO, *, err: TextIO = sys.stderr) -> int:
    """`mcp-desk keys revoke KEY_ID`: remove the key's line; running servers refuse the key from then on."""
    if path is None:
        err.write("error: MCP_DESK_API_KEYS_FILE is not set\n")
        return 1
    shown = key_id[:100]
    if not re.fullmatch(r"[0-9a-f]{12}", key_id):
        err.write(f"error: {shown!r} is not a key id (12 lowercase hex characters, see `mcp-desk keys list`)\n")
        return 2
    removed: list[str] = []

    def without(lines: list[str]) -> list[str]:
        kept = []
        for line in lines:
            fields = line.split()
            if fields and not fields[0].startswith("#") and fields[0] == key_id:
                removed.append(line)
            else:
                kept.append(line)
        return kept

    if path.exists():
        with keyfile.locked(path):
            keyfile.rewrite(path, without)
    if not removed:
        err.write(f"error: no key with id {shown} in {path}\n")
        return 1
    out.write(f"revoked {key_id}; running servers refuse it from their next request\n")
    return 0


def bootstrap_admin_key(path: Path, *, principal: str = "admin", role: str = "admin") -> str | None:
    """Create `path` holding one new key's line if no keys file exists yet; the key, or None if one existed.

    Only the hash is written. Of several processes starting at once on one volume, exactly one creates it.
    """
    if path.exists():
        return None
    key = generate_key()
    line = key_line(key, principal=principal, role=role)
    header = "# mcp-desk API keys: key_id principal role argon2id-hash (manage with `mcp-desk keys`)\n"
    return key if keyfile.create_exclusive(path, header + line + "\n") else None
