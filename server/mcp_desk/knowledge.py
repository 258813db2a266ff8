"""The knowledge base: Markdown runbooks under the docs root, read safely and indexed for search."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import structlog

from mcp_desk.domain.models import Doc
from mcp_desk.errors import AppError, InvalidInput
from mcp_desk.policy.paths import DEFAULT_BLOCKED, check_name, is_readable_name, read_beneath

log = structlog.get_logger()
MAX_DOC_BYTES = 1024 * 1024
DOC_SUFFIXES = (".md", ".markdown", ".txt")


def title_of(text: str, fallback: str) -> str:
    """The first Markdown heading, or the file name."""
    for line in text.splitlines()[:20]:
        if line.startswith("# "):
            return line[2:].strip()[:200]
    return fallback


def read_doc(root: Path, relative: str, blocked: Sequence[str] = DEFAULT_BLOCKED) -> Doc:
    """One document by its path relative to the docs root, read by the path rules of policy (tool and resource)."""
    check_name(relative, blocked)
    if not relative.endswith(DOC_SUFFIXES):
        raise InvalidInput(f"only {', '.join(DOC_SUFFIXES)} documents are served")
    text = read_beneath(root, relative, max_bytes=MAX_DOC_BYTES, blocked=blocked).decode("utf-8", errors="replace")
    return Doc(id=relative, title=title_of(text, Path(relative).stem), content=text, bytes=len(text.encode()))


def list_doc_paths(root: Path, blocked: Sequence[str] = DEFAULT_BLOCKED) -> list[str]:
    """Relative paths of the documents a reader could open: allowed names of regular files reached without links."""
    if not root.is_dir():
        return []
    found: list[str] = []
    # followlinks=False: a linked folder is listed among the subfolders but never entered, as reads refuse it.
    for directory, _subfolders, files in os.walk(root, followlinks=False):
        folder = Path(directory)
        for name in files:
            path = folder / name
            relative = path.relative_to(root).as_posix()
            if _is_plain_doc(path) and is_readable_name(relative, blocked):
                found.append(relative)
    return sorted(found)


def _is_plain_doc(path: Path) -> bool:
    return path.name.endswith(DOC_SUFFIXES) and not path.is_symlink() and path.is_file()


def scan_docs(root: Path, blocked: Sequence[str] = DEFAULT_BLOCKED) -> list[Doc]:
    """Every readable document under the root; a missing root is a warning, not a failure."""
    if not root.is_dir():
        log.warning("docs_root_missing", hint="set MCP_DESK_DOCS_PATH to the knowledge base folder")
        return []
    docs: list[Doc] = []
    for relative in list_doc_paths(root, blocked):
        try:
            docs.append(read_doc(root, relative, blocked))
        except (AppError, OSError) as exc:
            log.warning("doc_skipped", doc=relative, reason=type(exc).__name__)
    log.info("docs_indexed", count=len(docs))
    return docs
