"""Command line: argv → Settings → logging → app → transport."""

from __future__ import annotations

import gc
import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `mcp-desk` console script.

    The cyclic garbage collector is off while the process starts: imports and `create_app` make ~150,000
    objects that live as long as the process, and ~250 young and 2 full collections walked them for
    nothing (~150 ms of CPU before a stdio `initialize` could be answered, against ~1.2 s in all; start-up
    leaves ~1,000 unreachable objects). A server turns it back on once started (`transports.settle_heap`),
    every other command once its arguments are parsed (`cli.run`).
    """
    gc.disable()
    from mcp_desk.cli import run

    return run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
