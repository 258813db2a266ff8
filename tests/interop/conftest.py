"""Interop tests: print the conformance pass counts at the end of the run."""

from __future__ import annotations

import pytest

from .test_conformance import CONFORMANCE_SUMMARY


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """One line per conformance run: suite version, era, scenarios passed."""
    lines = config.stash.get(CONFORMANCE_SUMMARY, [])
    if lines:
        terminalreporter.section("MCP conformance")
        for line in lines:
            terminalreporter.write_line(line)
