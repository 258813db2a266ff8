"""`[macros.NAME]` in the policy file: the shipped samples, validation messages, limits and `policy explain`."""

from __future__ import annotations

import io

import pytest

from mcp_desk.errors import ConfigError
from mcp_desk.policy.rules import Policy, command_policy_explain
from mcp_desk.policy.validation import InputLimits
from tests.conftest import DOCUMENTED_TOOL_SCOPES as TOOLS

ROLES = '[roles.v]\nscopes = ["tickets:read"]\n'


def _from(macros: str) -> Policy:
    return Policy.from_toml(ROLES + macros, source="test.toml")


def test_the_built_in_policy_ships_three_macros_for_the_sample_runbooks() -> None:
    macros = Policy.load().macros
    assert sorted(macros) == ["password-reset-sent", "printer-resolved", "vpn-escalate-netops"]
    printer = macros["printer-resolved"]
    assert (printer.status, printer.add_tags, printer.visibility) == ("resolved", ("printer",), "public")
    assert printer.reply is not None and set(printer.reply.fields) == {"requester", "id"}
    vpn = macros["vpn-escalate-netops"]
    assert (vpn.status, vpn.priority, vpn.assignee, vpn.visibility) == ("in_progress", "high", "netops", "internal")
    assert macros["password-reset-sent"].status == "waiting"


def test_a_macro_table_becomes_a_macro_with_defaults() -> None:
    macro = _from('[macros.ack]\ndescription = "Acknowledge"\nreply = "Thanks, looking at {id}."\n').macros["ack"]
    assert (macro.name, macro.description, macro.visibility) == ("ack", "Acknowledge", "internal")
    assert (macro.status, macro.priority, macro.assignee, macro.add_tags) == (None, None, None, ())
    tagged = _from('[macros.tag]\ndescription = "d"\nadd_tags = ["a", "b"]\n').macros["tag"]
    assert (tagged.reply, tagged.add_tags) == (None, ("a", "b"))


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('[macros.Bad]\ndescription = "d"\nstatus = "open"', r"macros: macro name 'Bad' must match"),
        ('[macros."a b"]\ndescription = "d"\nstatus = "open"', r"macros: macro name 'a b' must match"),
        ('[macros.m]\nstatus = "open"', r"macros.m.description: Field required"),
        ('[macros.m]\ndescription = "  "\nstatus = "open"', r"macros.m.description: the description is blank"),
        ('[macros.m]\ndescription = "d"\nstatus = "done"', r"macros.m.status: Input should be 'open', 'in_progress'"),
        ('[macros.m]\ndescription = "d"\npriority = "p1"', r"macros.m.priority: Input should be 'low', 'normal'"),
        ('[macros.m]\ndescription = "d"\nstatus = "open"\ncolour = "red"', r"macros.m.colour: unknown key"),
        (
            '[macros.m]\ndescription = "d"\nreply = "Hi {name}"',
            r"macros.m.reply: unknown field \{name\} at character 4",
        ),
        ('[macros.m]\ndescription = "d"\nreply = "{title.__class__}"', r"macros.m.reply: placeholder .* not a plain"),
        ('[macros.m]\ndescription = "d"\nreply = "Hi {"', r"macros.m.reply: unmatched '\{' at character 4"),
        (
            '[macros.m]\ndescription = "d"\nreply = "a\\u0007b"',
            r"macros.m.reply: the reply contains control characters",
        ),
        ('[macros.m]\ndescription = "d"\nreply = "x"\nvisibility = "all"', r"macros.m.visibility: Input should be"),
        ('[macros.m]\ndescription = "d"\nvisibility = "public"', r"macros.m: `visibility` applies to the reply"),
        ('[macros.m]\ndescription = "d"', r"macros.m: the macro does nothing"),
        ('[macros.m]\ndescription = "d"\nadd_tags = [""]', r"macros.m.add_tags: tags must not be empty"),
        ('[macros.m]\ndescription = "d"\nadd_tags = ["a", "a"]', r"macros.m.add_tags: tag 'a' is listed twice"),
        ('[macros.m]\ndescription = "d"\nadd_tags = "a"', r"macros.m.add_tags: Input should be a valid tuple"),
        ('[macros.m]\ndescription = "d"\nassignee = " bob"', r"macros.m.assignee: the assignee has leading"),
        (f'[macros.m]\ndescription = "d"\nassignee = "{"b" * 65}"', r"macros.m.assignee: String should have at most"),
    ],
)
def test_invalid_macro_tables_are_config_errors_naming_the_key(table: str, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"^test\.toml: {message}"):
        _from(table)


@pytest.mark.parametrize(
    ("table", "limits", "message"),
    [
        (
            'add_tags = ["a", "b", "c"]',
            InputLimits(tags=2),
            r"macros.m.add_tags: 3 tags; .* is 2 \(MCP_DESK_MAX_TAGS\)",
        ),
        ('add_tags = ["abcdef"]', InputLimits(tag_chars=5), r"tag 'abcdef' is 6 characters; the limit is 5"),
        ('reply = "0123456789"', InputLimits(comment_bytes=8), r"macros.m.reply: 10 bytes; a comment may be at most 8"),
    ],
)
def test_start_up_checks_macros_against_the_configured_limits(table: str, limits: InputLimits, message: str) -> None:
    policy = _from(f'[macros.m]\ndescription = "d"\n{table}\n')
    policy.check(TOOLS)  # without limits, only the tool and role cross-checks run
    with pytest.raises(ConfigError, match=message):
        policy.check(TOOLS, limits=limits)
    policy.check(TOOLS, limits=InputLimits())


def test_policy_explain_lists_each_macro_with_what_it_changes() -> None:
    out = io.StringIO()
    assert command_policy_explain(Policy.load(), "viewer", TOOLS, out) == 0
    lines = out.getvalue().split("macros (apply_macro; reply fields: ")[1].splitlines()
    assert lines[0] == "{id}, {title}, {requester}, {assignee}, {priority}, {status}):"
    assert [line for line in lines if not line.startswith("    ")][1:] == [
        "  password-reset-sent: Self-service reset link sent (Password Reset runbook); "
        "wait for the requester to confirm sign-in.",
        "  printer-resolved: Printer back online (Printer Offline runbook): tell the requester and resolve the ticket.",
        "  vpn-escalate-netops: Gateway-side VPN failure (VPN Troubleshooting runbook): "
        "escalate to Network Operations.",
    ]
    assert (
        "    does: status → in_progress; priority → high; adds tags vpn, escalated; assigns to netops; "
        "posts an internal reply" in lines
    )
    assert "    reply uses: {id}, {priority}" in lines


def test_policy_explain_says_when_there_are_no_macros() -> None:
    out = io.StringIO()
    assert command_policy_explain(_from(""), None, TOOLS, out) == 0
    assert out.getvalue().endswith("\nmacros (apply_macro): (none)\n")
