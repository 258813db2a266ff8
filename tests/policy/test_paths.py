"""Path safety: the bypass corpus of reference MCP filesystem servers, plus exclusive writes."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

from mcp_desk.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from mcp_desk.policy.paths import (
    check_name,
    is_blocked,
    is_readable_name,
    read_beneath,
    resolve_path,
    write_exclusive,
)
from tests.link_race import SECRET, swap_links


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A docs root with a nested runbook, a sibling `root_evil` and a secret outside."""
    root = tmp_path / "root"
    (root / "runbooks").mkdir(parents=True)
    (root / "runbooks" / "disk.md").write_text("# disk\n")
    (root / "index.md").write_text("# index\n")
    evil = tmp_path / "root_evil"
    evil.mkdir()
    (evil / "loot.md").write_text("stolen\n")
    (tmp_path / "outside.txt").write_text("outside\n")
    return root


INVALID_CORPUS = [
    "",
    "   ",
    "/etc/passwd",
    "//etc/passwd",
    "C:/Windows/win.ini",
    "~/.ssh/id_rsa",
    "../outside.txt",
    "runbooks/../../outside.txt",
    "runbooks/../index.md",
    "..",
    "./..",
    "runbooks\\..\\..\\outside.txt",
    "..\\outside.txt",
    "%2e%2e/outside.txt",
    "%2E%2E%2Foutside.txt",
    "..%2foutside.txt",
    "%252e%252e/outside.txt",
    "runbooks%00.md",
    "index.md\x00.png",
    "index.md\n",
    "runbooks/\x1b[31mdisk.md",
    "\u202eexe.md",
    "in\u200bdex.md",
    "\uff0e\uff0e/outside.txt",
    "\uff0e\uff0e\uff0foutside.txt",
    "\u2025/outside.txt",
    "..\u2215outside.txt",
    "..\u2044outside.txt",
    "e\u0301.md",
    "\ufb01le.md",
    "a" * 2000,
    "x" * 300 + "/index.md",
    " index.md",
    ".",
    "./",
]


@pytest.mark.parametrize("candidate", INVALID_CORPUS)
def test_malformed_or_traversing_paths_are_invalid_input(tree: Path, candidate: str) -> None:
    with pytest.raises(InvalidInput):
        resolve_path(tree, candidate)
    with pytest.raises(InvalidInput):
        read_beneath(tree, candidate, max_bytes=100)
    assert not is_readable_name(candidate)


BLOCKED_CORPUS = [
    ".env",
    ".env.production",
    "prod.env",
    ".ENV",
    "runbooks/.env.local",
    "secrets/token.txt",
    "Secrets/token.txt",
    "credentials/aws.json",
    "credentials.json",
    "mcp_desk.pem",
    "tls/server.KEY",
    "id_rsa",
    "id_rsa.pub",
    "keys/id_ed25519",
    ".git/config",
    ".ssh/authorized_keys",
    ".aws/credentials",
    ".netrc",
]


@pytest.mark.parametrize("candidate", BLOCKED_CORPUS)
def test_blocked_patterns_are_permission_denied(tree: Path, candidate: str) -> None:
    with pytest.raises(PermissionDenied) as info:
        resolve_path(tree, candidate)
    assert info.value.context["reason"] == "blocked_path"
    with pytest.raises(PermissionDenied) as read:
        read_beneath(tree, candidate, max_bytes=100)
    assert read.value.context["reason"] == "blocked_path"
    assert not is_readable_name(candidate)


def test_plain_relative_paths_resolve_under_the_root(tree: Path) -> None:
    assert resolve_path(tree, "runbooks/disk.md") == tree.resolve() / "runbooks" / "disk.md"
    assert resolve_path(tree, "./runbooks//disk.md") == tree.resolve() / "runbooks" / "disk.md"
    assert resolve_path(tree, "café.md") == tree.resolve() / "café.md"


def test_sibling_directory_sharing_the_prefix_is_not_inside(tree: Path) -> None:
    """The `/root` vs `/root_evil` bug: a string prefix check lets the sibling through."""
    os.symlink(tree.parent / "root_evil", tree / "evil")
    with pytest.raises(PermissionDenied):
        resolve_path(tree, "evil/loot.md")


def test_symlink_inside_root_pointing_out_is_denied(tree: Path) -> None:
    os.symlink(tree.parent / "outside.txt", tree / "link.md")
    with pytest.raises(PermissionDenied) as info:
        resolve_path(tree, "link.md")
    assert info.value.context["reason"] == "path_escape"


def test_intermediate_directory_link_pointing_out_is_denied(tree: Path) -> None:
    os.symlink(tree.parent, tree / "up")
    with pytest.raises(PermissionDenied):
        resolve_path(tree, "up/outside.txt")


def test_dangling_symlink_pointing_out_is_denied(tree: Path) -> None:
    os.symlink(tree.parent / "not-yet-there.txt", tree / "dangling.md")
    with pytest.raises(PermissionDenied):
        resolve_path(tree, "dangling.md")
    with pytest.raises(PermissionDenied):
        resolve_path(tree, "dangling.md", for_write=True)


def test_symlink_to_a_blocked_file_inside_root_is_denied(tree: Path) -> None:
    (tree / ".env").write_text("TOKEN=x\n")
    os.symlink(tree / ".env", tree / "notes.md")
    with pytest.raises(PermissionDenied) as info:
        resolve_path(tree, "notes.md")
    assert info.value.context["reason"] == "blocked_path"


def test_symlink_staying_inside_root_is_followed_for_reads_but_refused_for_writes(tree: Path) -> None:
    os.symlink(tree / "runbooks", tree / "rb")
    assert resolve_path(tree, "rb/disk.md") == tree.resolve() / "runbooks" / "disk.md"
    with pytest.raises(PermissionDenied):
        resolve_path(tree, "rb/new.md", for_write=True)


def test_root_reached_through_a_symlink_still_contains_its_files(tree: Path) -> None:
    alias = tree.parent / "alias"
    os.symlink(tree, alias)
    assert resolve_path(alias, "index.md") == tree.resolve() / "index.md"


def test_missing_root_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        resolve_path(tmp_path / "nope", "index.md")


def test_blocked_matching_is_per_segment_and_case_insensitive() -> None:
    assert is_blocked(["docs", "SECRETS", "a.md"])
    assert not is_blocked(["docs", "secretsanta.md"])
    assert not is_blocked(["environment.md"])


def test_extra_blocked_patterns_are_honoured(tree: Path) -> None:
    with pytest.raises(PermissionDenied):
        resolve_path(tree, "runbooks/disk.md", blocked=("*.md",))


def test_read_beneath_reads_a_plain_file(tree: Path) -> None:
    assert read_beneath(tree, "index.md", max_bytes=100) == b"# index\n"
    assert read_beneath(tree, "./runbooks//disk.md", max_bytes=100) == b"# disk\n"
    assert check_name("runbooks/disk.md") == ["runbooks", "disk.md"]
    assert is_readable_name("runbooks/disk.md")


def test_read_beneath_refuses_directories_fifos_missing_files_and_oversize(tree: Path) -> None:
    os.mkfifo(tree / "pipe.md")
    with pytest.raises(NotFound):
        read_beneath(tree, "pipe.md", max_bytes=100)
    with pytest.raises(NotFound):
        read_beneath(tree, "runbooks", max_bytes=100)
    with pytest.raises(NotFound):
        read_beneath(tree, "missing.md", max_bytes=100)
    with pytest.raises(NotFound):
        read_beneath(tree, "index.md/more.md", max_bytes=100)
    with pytest.raises(InvalidInput, match="larger than 3 bytes"):
        read_beneath(tree, "index.md", max_bytes=3)
    with pytest.raises(NotFound):
        read_beneath(tree.parent / "nope", "index.md", max_bytes=100)


@pytest.mark.parametrize(
    ("link", "target", "candidate"),
    [
        ("link.md", "outside.txt", "link.md"),
        ("up", ".", "up/outside.txt"),
        ("evil", "root_evil", "evil/loot.md"),
        ("rb", "root/runbooks", "rb/disk.md"),
        ("dangling.md", "not-yet-there.txt", "dangling.md"),
    ],
)
def test_read_beneath_follows_no_link_on_any_component(tree: Path, link: str, target: str, candidate: str) -> None:
    """Links are refused wherever they sit and wherever they point, even inside the root."""
    os.symlink(tree.parent / target, tree / link)
    with pytest.raises(PermissionDenied) as info:
        read_beneath(tree, candidate, max_bytes=100)
    assert info.value.context["reason"] == "path_escape"


def test_read_beneath_through_a_root_reached_by_a_link(tree: Path) -> None:
    alias = tree.parent / "alias"
    os.symlink(tree, alias)
    assert read_beneath(alias, "runbooks/disk.md", max_bytes=100) == b"# disk\n"


def test_a_link_swapped_in_during_reads_never_yields_the_outside_file(tree: Path) -> None:
    """The check-then-open race: a path checked while plain must not be opened through a link swapped in."""
    outside = tree.parent / "outside"
    outside.mkdir()
    (outside / "doc.md").write_bytes(SECRET)
    (tree / "doc.md").write_bytes(b"inside\n")
    (tree / "sub").mkdir()
    (tree / "sub" / "doc.md").write_bytes(b"inside\n")
    stop = threading.Event()
    swapper = threading.Thread(target=swap_links, args=(tree, stop))
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # hand the GIL over often, so the swaps land between a check and an open
    swapper.start()
    seen: list[bytes] = []
    try:
        for _ in range(2000):
            for candidate in ("doc.md", "sub/doc.md"):
                try:
                    seen.append(read_beneath(tree, candidate, max_bytes=100))
                except (NotFound, PermissionDenied):
                    continue
    finally:
        stop.set()
        swapper.join(timeout=10)
        sys.setswitchinterval(interval)
    assert SECRET not in seen
    assert set(seen) <= {b"inside\n"}


def test_write_exclusive_creates_the_file_and_leaves_no_temp(tmp_path: Path) -> None:
    path = write_exclusive(tmp_path, "ticket-1.md", b"# hi\n")
    assert path == tmp_path.resolve() / "ticket-1.md"
    assert path.read_bytes() == b"# hi\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ticket-1.md"]


def test_write_exclusive_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("original")
    with pytest.raises(Conflict):
        write_exclusive(tmp_path, "a.md", b"new")
    assert (tmp_path / "a.md").read_text() == "original"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.md"]


def test_write_exclusive_does_not_follow_or_replace_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "victim.txt"
    target.write_text("keep")
    exports = tmp_path / "exports"
    exports.mkdir()
    os.symlink(target, exports / "a.md")
    os.symlink(tmp_path / "nowhere.txt", exports / "b.md")
    with pytest.raises(Conflict):
        write_exclusive(exports, "a.md", b"pwn")
    with pytest.raises(Conflict):
        write_exclusive(exports, "b.md", b"pwn")
    assert target.read_text() == "keep"
    assert not (tmp_path / "nowhere.txt").exists()


@pytest.mark.parametrize("name", ["../a.md", "sub/a.md", ".hidden", ".env", "a.pem", "", "a\x00.md", "..", "a\\b.md"])
def test_write_exclusive_refuses_names_that_are_not_plain(tmp_path: Path, name: str) -> None:
    with pytest.raises((InvalidInput, PermissionDenied)):
        write_exclusive(tmp_path, name, b"x")
    assert list(tmp_path.iterdir()) == []


def test_concurrent_exclusive_writes_have_exactly_one_winner(tmp_path: Path) -> None:
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt(n: int) -> None:
        try:
            write_exclusive(tmp_path, "race.md", f"writer {n}".encode())
            result = "won"
        except Conflict:
            result = "lost"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(outcomes) == ["lost"] * 7 + ["won"]
    assert (tmp_path / "race.md").read_text().startswith("writer ")
