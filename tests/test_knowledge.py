"""The knowledge base: which documents are listed, read and indexed."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from mcp_desk import knowledge
from mcp_desk.errors import InvalidInput, PermissionDenied
from mcp_desk.policy.paths import DEFAULT_BLOCKED


@pytest.fixture
def kb(tmp_path: Path) -> Path:
    root = tmp_path / "kb"
    (root / "runbooks").mkdir(parents=True)
    (root / "runbooks" / "disk.md").write_text("# Disk full\n\nrotate logs\n")
    (root / "notes.txt").write_text("no heading\n")
    (root / "image.png").write_bytes(b"\x89PNG")
    return root


def test_read_doc_serves_documents_with_their_title(kb: Path) -> None:
    doc = knowledge.read_doc(kb, "runbooks/disk.md")
    assert (doc.id, doc.title, doc.bytes) == ("runbooks/disk.md", "Disk full", len("# Disk full\n\nrotate logs\n"))
    assert knowledge.read_doc(kb, "notes.txt").title == "notes"


def test_read_doc_refuses_other_suffixes_after_the_name_checks(kb: Path) -> None:
    with pytest.raises(InvalidInput, match="documents are served"):
        knowledge.read_doc(kb, "image.png")
    with pytest.raises(PermissionDenied):
        knowledge.read_doc(kb, "credentials.png")


def test_listing_skips_links_blocked_names_and_other_suffixes(kb: Path, tmp_path: Path) -> None:
    (kb / "secrets").mkdir()
    (kb / "secrets" / "token.md").write_text("x")
    (kb / "linked.md").symlink_to(kb / "notes.txt")
    (kb / "more").symlink_to(kb / "runbooks")
    assert knowledge.list_doc_paths(kb) == ["notes.txt", "runbooks/disk.md"]
    assert knowledge.list_doc_paths(kb, (*DEFAULT_BLOCKED, "notes*")) == ["runbooks/disk.md"]
    assert knowledge.list_doc_paths(tmp_path / "missing") == []


def test_scan_indexes_readable_documents_and_skips_the_rest_with_a_warning(kb: Path, tmp_path: Path) -> None:
    (kb / "huge.md").write_bytes(b"x" * (knowledge.MAX_DOC_BYTES + 1))
    with capture_logs() as logs:
        docs = knowledge.scan_docs(kb)
        assert knowledge.scan_docs(tmp_path / "missing") == []
    assert [doc.id for doc in docs] == ["notes.txt", "runbooks/disk.md"]
    events = [(entry["event"], entry.get("doc")) for entry in logs]
    assert ("doc_skipped", "huge.md") in events
    assert ("docs_root_missing", None) in events
