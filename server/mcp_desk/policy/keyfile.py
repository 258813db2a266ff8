"""Writing the keys file safely: appends and rewrites that readers never see half done.

A server re-reads the keys file when it changes (policy/keys.py), so every change here is atomic:
a new line is one `O_APPEND` write, a removal writes a sibling temporary file and renames it over
the old one, and the very first file is linked into place only if no other process made it first.
Files are created with mode 0600: they hold hashes, and nobody but the server's user needs them.
Writers on one machine take an advisory lock on `<file>.lock` (where the platform has `fcntl`), so
two `keys` commands never lose each other's change.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

FILE_MODE = 0o600


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock for changes to `path` (no-op where `fcntl` does not exist)."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; single-writer use is the operator's job there
        yield
        return
    fd = os.open(path.with_name(path.name + ".lock"), os.O_WRONLY | os.O_CREAT, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def append_line(path: Path, line: str) -> None:
    """Add `line` at the end of `path`, creating the file (mode 0600) if it does not exist."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
    try:
        size = os.fstat(fd).st_size
        text = line + "\n"
        if size and not _ends_with_newline(path, size):
            text = "\n" + text
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def create_exclusive(path: Path, text: str) -> bool:
    """Write `path` with `text` unless it exists; True if this call created it.

    The content is written to a temporary file first and linked into place, so a reader never sees
    the file empty and two processes starting at once create it only once.
    """
    tmp = _write_temporary(path, text)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink()
    _fsync_directory(path.parent)
    return True


def rewrite(path: Path, change: Callable[[list[str]], list[str]]) -> None:
    """Replace `path` with `change(its lines)` atomically, keeping its permission bits."""
    lines = path.read_text(encoding="utf-8").splitlines()
    mode = path.stat().st_mode & 0o777
    tmp = _write_temporary(path, "".join(line + "\n" for line in change(lines)), mode=mode)
    os.replace(tmp, path)
    _fsync_directory(path.parent)


def _write_temporary(path: Path, text: str, *, mode: int = FILE_MODE) -> Path:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return tmp


def _ends_with_newline(path: Path, size: int) -> bool:
    with path.open("rb") as f:
        f.seek(size - 1)
        return f.read(1) == b"\n"


def _fsync_directory(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open a directory; its rename is durable enough there
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
