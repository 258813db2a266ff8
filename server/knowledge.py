"""The knowledge base: Markdown runbooks under the docs root, read safely and indexed for search."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import structlog

from server.domain.models import Doc
from server.errors import AppError, InvalidInput, NotFound
from server.policy.paths import resolve_path

log = structlog.get_logger()
MAX_DOC_BYTES = 1024 * 1024
DOC_SUFFIXES = (".md", ".markdown", ".txt")


def title_of(text: str, fallback: str) -> str:
    """The first Markdown heading, or the file name."""
    for line in text.splitlines()[:20]:
        if line.startswith("# "):
            return line[2:].strip()[:200]
    return fallback


def read_regular(path: Path, max_bytes: int = MAX_DOC_BYTES) -> str:
    """Read a regular file without following a final link or blocking on a FIFO or device."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFound("document not found; search_docs lists the available documents") from None
    except OSError:
        raise NotFound("document cannot be read; only regular files in the knowledge base are served") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotFound("document cannot be read; only regular files in the knowledge base are served")
        if info.st_size > max_bytes:
            raise InvalidInput(f"document is larger than {max_bytes} bytes and is not served")
        data = os.read(fd, max_bytes + 1)
    finally:
        os.close(fd)
    return data.decode("utf-8", errors="replace")


def read_doc(root: Path, relative: str) -> Doc:
    """One document by its path relative to the docs root, after the path rules of policy."""
    path = resolve_path(root, relative)
    if not relative.endswith(DOC_SUFFIXES):
        raise InvalidInput(f"only {', '.join(DOC_SUFFIXES)} documents are served")
    text = read_regular(path)
    return Doc(id=relative, title=title_of(text, Path(relative).stem), content=text, bytes=len(text.encode()))


def scan_docs(root: Path) -> list[Doc]:
    """Every readable document under the root; a missing root is a warning, not a failure."""
    if not root.is_dir():
        log.warning("docs_root_missing", hint="set MCP_DESK_DOCS_PATH to the knowledge base folder")
        return []
    docs: list[Doc] = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if not path.name.endswith(DOC_SUFFIXES) or not path.is_file():
            continue
        try:
            docs.append(read_doc(root, relative))
        except (AppError, OSError) as exc:
            log.warning("doc_skipped", doc=relative, reason=type(exc).__name__)
    log.info("docs_indexed", count=len(docs))
    return docs
