"""Template loading: the shipped defaults, the deny-list and the placeholder rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mcp_desk.errors import ConfigError
from mcp_desk.sandbox.templates import Allowlist, load_allowlist, parse_templates
from mcp_desk.tools.diagnostics import all_read_only, annotations_for, explain_diagnostics

ROOTS = {"logs": Path("/var/log")}


def policy(tmp_path: Path, text: str) -> Path:
    """Write a policy file holding `text`."""
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


def entry(program: str, argv: list[str], params: str = "") -> str:
    """A one-template [diagnostics] table."""
    quoted = ", ".join(f'"{item}"' for item in argv)
    head = f'[diagnostics.probe]\ndescription = "d"\nprogram = "{program}"\nargv = [{quoted}]\nread_only = true\n'
    return head + params


def test_shipped_defaults_load_and_are_all_read_only() -> None:
    allowlist = load_allowlist(None, roots=ROOTS)

    assert {"disk_usage", "memory", "uptime", "processes", "tail_log", "grep_log"} <= set(allowlist.names())
    assert all_read_only(allowlist)
    assert annotations_for(allowlist).read_only


@pytest.mark.parametrize(
    "program",
    ["/bin/sh", "/usr/bin/bash", "/usr/bin/env", "/usr/bin/python3", "/usr/bin/find", "/usr/bin/awk", "/usr/bin/tar"],
)
def test_shells_interpreters_and_programs_that_run_programs_are_rejected_at_start(tmp_path: Path, program: str) -> None:
    if not Path(program).exists():
        pytest.skip(f"{program} is not installed here")
    with pytest.raises(ConfigError, match=r"diagnostics\.probe: program"):
        load_allowlist(policy(tmp_path, entry(program, ["-c", "id"])), roots=ROOTS)


def test_a_symlink_or_script_leading_to_a_shell_is_rejected(tmp_path: Path) -> None:
    link = tmp_path / "innocent"
    link.symlink_to("/bin/sh")
    script = tmp_path / "check"
    script.write_text("#!/bin/sh\nid\n")
    script.chmod(0o755)
    for program in (link, script):
        with pytest.raises(ConfigError, match="is a shell"):
            load_allowlist(policy(tmp_path, entry(str(program), [])), roots=ROOTS)


@pytest.mark.parametrize(
    ("argv", "params", "message"),
    [
        (["--lines={n}"], '[diagnostics.probe.params.n]\ntype = "int"\nmin = 1\nmax = 5\n', "whole argv item"),
        (["{n}"], "", "has no"),
        ([], '[diagnostics.probe.params.n]\ntype = "int"\nmin = 1\nmax = 5\n', "not used"),
        (["-n", "{n}"], '[diagnostics.probe.params.n]\ntype = "int"\nmin = -5\nmax = 5\n', "min >= 0"),
        (["{e}"], '[diagnostics.probe.params.e]\ntype = "enum"\nchoices = ["-rf"]\n', "starting with '-'"),
        (["--", "{p}"], '[diagnostics.probe.params.p]\ntype = "path"\nroot = "secrets"\n', "unknown root"),
    ],
)
def test_placeholder_rules_are_enforced_at_start(tmp_path: Path, argv: list[str], params: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_allowlist(policy(tmp_path, entry("/usr/bin/tail", argv, params)), roots=ROOTS)


def test_relative_programs_and_unknown_fields_are_rejected() -> None:
    body: dict[str, Any] = {"description": "d", "program": "tail", "argv": [], "read_only": True}
    with pytest.raises(ConfigError, match="absolute"):
        parse_templates({"probe": body}, roots=ROOTS, source="policy")
    with pytest.raises(ConfigError, match="shell"):
        parse_templates({"probe": {**body, "program": "/usr/bin/tail", "shell": True}}, roots=ROOTS, source="policy")


def test_a_policy_diagnostics_table_replaces_the_defaults_and_may_declare_writes(tmp_path: Path) -> None:
    text = entry("/usr/bin/tail", ["-n", "{n}"], '[diagnostics.probe.params.n]\ntype = "int"\nmin = 1\nmax = 5\n')
    allowlist = load_allowlist(policy(tmp_path, text.replace("read_only = true", "read_only = false")), roots=ROOTS)

    assert allowlist.names() == ["probe"]
    assert not all_read_only(allowlist)
    assert not annotations_for(allowlist).read_only


def test_explain_lists_each_template_with_limits_and_params() -> None:
    lines = explain_diagnostics(load_allowlist(None, roots=ROOTS))

    text = "\n".join(lines)
    assert "tail_log: /usr/bin/tail -n {lines} -- {file}" in text
    assert "param lines: integer 1..1000 (default 100)" in text
    assert "param file: file under /var/log (root 'logs')" in text
    assert "read-only; timeout" in text


def test_explain_says_when_nothing_is_configured() -> None:
    assert explain_diagnostics(Allowlist({}, ROOTS)) == ["(no diagnostics configured)"]
