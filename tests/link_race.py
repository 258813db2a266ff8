"""A thread that swaps links in and out of a docs root, for the check-then-open race tests."""

from __future__ import annotations

import os
import threading
from pathlib import Path

SECRET = b"outside secret\n"


def swap_links(tree: Path, stop: threading.Event) -> None:
    """Swap a link to the outside in and out: for the file itself and for the folder above it."""
    outside = tree.parent / "outside"
    while not stop.is_set():
        os.symlink(outside / "doc.md", tree / "doc.tmp")
        os.replace(tree / "doc.tmp", tree / "doc.md")
        (tree / "doc.tmp").write_bytes(b"inside\n")
        os.replace(tree / "doc.tmp", tree / "doc.md")
        os.rename(tree / "sub", tree / "sub.real")
        os.symlink(outside, tree / "sub")
        os.unlink(tree / "sub")
        os.rename(tree / "sub.real", tree / "sub")
