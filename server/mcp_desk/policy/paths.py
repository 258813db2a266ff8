"""Path safety: turn a caller's relative path into a real path under a root, or refuse.

Names: `check_name` refuses bad text (control characters, absolute paths, `..`, percent escapes,
Unicode look-alikes) and blocked patterns, before any file is touched.
Reads: `read_beneath` opens the name component by component beneath the root's directory descriptor
with O_NOFOLLOW, so no link is ever followed, not even one swapped in after the check; it then checks
and reads what it opened. `resolve_path` (diagnostic operands, which are passed on as text) checks the
name, then containment of the *resolved* real path, compared component by component so `/root_evil`
is never "inside" `/root`.
Writes: `write_exclusive` creates a temp file with O_CREAT|O_EXCL|O_NOFOLLOW in the target
directory, fsyncs it, then `linkat`s it to the final name. `link` never follows a link at the
destination and fails with EEXIST instead of overwriting, so an existing file or symlink is never
replaced; the temp name is then unlinked and the directory fsynced. Filesystems without hard links
(vfat, some FUSE mounts) are refused with StorageUnavailable rather than degraded to a racy rename.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import re
import secrets
import stat
import unicodedata
from collections.abc import Sequence
from pathlib import Path

from mcp_desk.errors import AppError, Conflict, InvalidInput, NotFound, PermissionDenied, StorageUnavailable

DEFAULT_BLOCKED: tuple[str, ...] = (
    ".env",
    ".env.*",
    "*.env",
    "secrets",
    "secret",
    "credentials",
    "credentials.*",
    ".git",
    ".ssh",
    ".aws",
    ".gnupg",
    ".kube",
    ".docker",
    ".netrc",
    ".npmrc",
    ".pypirc",
    ".pgpass",
    ".htpasswd",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.kdbx",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
)
MAX_PATH_CHARS = 1024
MAX_SEGMENT_BYTES = 255
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
# Characters that render as, or normalise to, a dot or a slash; NFKC catches most, these it keeps.
_LOOKALIKES = frozenset("\\\u2215\u2044\u29f8\u29f9\u2216\ufe68\uff3c\u2024\u2025\u2026\ufe52\uff0e\uff0f")
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_MODE_FILE = 0o640
# O_NOFOLLOW on every component: a link anywhere fails the open (ELOOP/ENOTDIR) instead of being followed.
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO must not hang the worker thread; O_NOCTTY: a terminal never becomes ours.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def resolve_path(
    root: Path, candidate: str, *, for_write: bool = False, blocked: Sequence[str] = DEFAULT_BLOCKED
) -> Path:
    """The real path of `candidate` under `root`; InvalidInput for bad text, PermissionDenied for escapes."""
    parts = check_name(candidate, blocked)
    root_real = _real_root(root)
    target = root_real.joinpath(*parts)
    if for_write:
        _refuse_links(root_real, parts)
    real = Path(os.path.realpath(target))
    if not real.is_relative_to(root_real):
        raise PermissionDenied("path is outside the allowed folder", reason="path_escape", path=candidate)
    if real != root_real:
        _check_blocked(real.relative_to(root_real).parts, blocked, candidate)
    return real


def read_beneath(root: Path, candidate: str, *, max_bytes: int, blocked: Sequence[str] = DEFAULT_BLOCKED) -> bytes:
    """The bytes of the regular file `candidate` under `root`, reached without following any link.

    The name passes the text and blocked-pattern checks, then is opened one component at a time beneath
    the root's directory descriptor with O_NOFOLLOW, so a link swapped in after the check is refused at
    open instead of followed. What was opened is checked (a regular file of at most `max_bytes`) and read
    from that same descriptor. NotFound for anything missing or not a regular file; PermissionDenied for
    a link anywhere on the way; InvalidInput when the file is too large.
    """
    parts = check_name(candidate, blocked)
    fd = _open_beneath(_real_root(root), parts, candidate)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotFound("no such document", path=candidate, reason="not_regular_file")
        data = _read_at_most(fd, max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise InvalidInput(f"document is larger than {max_bytes} bytes")
    return data


def check_name(candidate: str, blocked: Sequence[str] = DEFAULT_BLOCKED) -> list[str]:
    """The path segments of `candidate` once its text and blocked-pattern checks pass (no file access)."""
    parts = _check_text(candidate)
    _check_blocked(parts, blocked, candidate)
    return parts


def is_readable_name(candidate: str, blocked: Sequence[str] = DEFAULT_BLOCKED) -> bool:
    """True when `candidate` passes the same name checks a read applies (for listings and completions)."""
    try:
        check_name(candidate, blocked)
    except AppError:
        return False
    return True


def write_exclusive(root: Path, name: str, data: bytes, *, blocked: Sequence[str] = DEFAULT_BLOCKED) -> Path:
    """Write `data` to the new file `root/name`; Conflict if it exists, never following a link."""
    _check_plain_name(name, blocked)
    root_real = _real_root(root)
    dir_fd = os.open(root_real, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        temp = _write_temp(dir_fd, name, data)
        try:
            os.link(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        except FileExistsError:
            raise Conflict(f"{name} already exists; choose another filename") from None
        except OSError as exc:
            raise _storage_error(exc) from None
        finally:
            os.unlink(temp, dir_fd=dir_fd)
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return root_real / name


def is_blocked(parts: Sequence[str], blocked: Sequence[str] = DEFAULT_BLOCKED) -> bool:
    """True when any path segment matches a blocked pattern (case-insensitive)."""
    lowered = [part.casefold() for part in parts]
    return any(fnmatch.fnmatchcase(part, pattern.casefold()) for part in lowered for pattern in blocked)


def _check_text(candidate: str) -> list[str]:
    if not candidate or not candidate.strip():
        raise InvalidInput("path is empty")
    if len(candidate) > MAX_PATH_CHARS:
        raise InvalidInput(f"path is longer than {MAX_PATH_CHARS} characters")
    if any(unicodedata.category(ch) in _BAD_CATEGORIES for ch in candidate):
        raise InvalidInput("path contains control or invisible characters")
    if _PERCENT_ESCAPE.search(candidate):
        raise InvalidInput("path contains percent-encoded characters; pass the plain relative path")
    if any(ch in _LOOKALIKES for ch in candidate) or unicodedata.normalize("NFKC", candidate) != candidate:
        raise InvalidInput("path contains look-alike or non-normalised Unicode characters")
    if candidate.startswith("/") or re.match(r"^[A-Za-z]:", candidate) or candidate.startswith("~"):
        raise InvalidInput("path must be relative to the folder")
    parts = [part for part in candidate.split("/") if part not in ("", ".")]
    if any(part == ".." for part in parts):
        raise InvalidInput("path must not contain '..'")
    if not parts:
        raise InvalidInput("path names no file")
    if any(len(part.encode()) > MAX_SEGMENT_BYTES or part != part.strip() for part in parts):
        raise InvalidInput("path has an overlong or space-padded segment")
    return parts


def _check_blocked(parts: Sequence[str], blocked: Sequence[str], candidate: str) -> None:
    if is_blocked(parts, blocked):
        raise PermissionDenied("path is blocked by policy", reason="blocked_path", path=candidate)


def _check_plain_name(name: str, blocked: Sequence[str]) -> None:
    parts = _check_text(name)
    if len(parts) != 1 or parts[0] != name or name.startswith("."):
        raise InvalidInput("filename must be a plain name without folders or a leading dot")
    _check_blocked(parts, blocked, name)


def _real_root(root: Path) -> Path:
    try:
        real = root.resolve(strict=True)
    except OSError:
        raise NotFound("the folder is not available") from None
    if not real.is_dir():
        raise NotFound("the folder is not available")
    return real


def _open_beneath(root_real: Path, parts: Sequence[str], candidate: str) -> int:
    dir_fd = os.open(root_real, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            child = _open_at(dir_fd, part, _DIR_FLAGS, candidate)
            os.close(dir_fd)
            dir_fd = child
        return _open_at(dir_fd, parts[-1], _FILE_FLAGS, candidate)
    finally:
        os.close(dir_fd)


def _open_at(dir_fd: int, name: str, flags: int, candidate: str) -> int:
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except OSError as exc:
        if _is_link(dir_fd, name):
            raise PermissionDenied("path goes through a link", reason="path_escape", path=candidate) from None
        raise NotFound("no such document", path=candidate, errno=exc.errno) from None


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    remaining = limit
    while remaining > 0 and (chunk := os.read(fd, min(remaining, 1 << 16))):
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _is_link(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _refuse_links(root_real: Path, parts: Sequence[str]) -> None:
    current = root_real
    for part in parts:
        current = current / part
        if current.is_symlink():
            raise PermissionDenied("path goes through a link", reason="path_escape", path="/".join(parts))


def _write_temp(dir_fd: int, name: str, data: bytes) -> str:
    temp = f".{name}.{secrets.token_hex(8)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(temp, flags, _MODE_FILE, dir_fd=dir_fd)
    except OSError as exc:
        raise _storage_error(exc) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        os.unlink(temp, dir_fd=dir_fd)
        raise _storage_error(exc) from None
    return temp


def _storage_error(exc: OSError) -> StorageUnavailable:
    reason = errno.errorcode.get(exc.errno or 0, "unknown")
    return StorageUnavailable("could not write the file; nothing was saved", errno=reason)
