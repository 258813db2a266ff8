"""The policy file: the built-in roles, validation errors, overrides and `policy explain`."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from mcp_desk.domain.principal import ALL_SCOPES
from mcp_desk.domain.sla import DEFAULT_TERMS, SlaTerms
from mcp_desk.errors import ConfigError
from mcp_desk.policy.paths import DEFAULT_BLOCKED
from mcp_desk.policy.rules import Policy, command_policy_explain
from tests.conftest import DOCUMENTED_TOOL_SCOPES as TOOLS

READS = {
    "get_note",
    "list_notes",
    "search_notes",
    "get_ticket",
    "get_ticket_history",
    "list_tickets",
    "search_tickets",
    "list_macros",
    "search_docs",
    "read_doc",
    "get_usage",
}
AGENT = READS | {
    "create_note",
    "update_note",
    "create_ticket",
    "update_ticket",
    "transition_ticket",
    "assign_ticket",
    "comment_ticket",
    "link_note",
    "apply_macro",
    "export_ticket",
}
EXPECTED = {"viewer": READS, "agent": AGENT, "admin": set(TOOLS)}


@pytest.fixture(scope="module")
def policy() -> Policy:
    """The built-in policy, checked against the tool list."""
    loaded = Policy.load()
    loaded.check(TOOLS, roles_in_use={"MCP_DESK_STDIO_ROLE": "agent"})
    return loaded


@pytest.mark.parametrize("role", ["viewer", "agent", "admin"])
@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_role_matrix_of_the_built_in_policy(policy: Policy, role: str, tool: str) -> None:
    principal = policy.principal_for("p", role)
    scope = policy.scope_for(tool, TOOLS[tool])
    allowed = scope is None or principal.has(scope)
    assert allowed == (tool in EXPECTED[role])


def test_built_in_roles_match_the_design(policy: Policy) -> None:
    assert policy.role_names() == ["viewer", "agent", "admin"]
    viewer = {"notes:read", "tickets:read", "docs:read"}
    assert policy.scopes_for("viewer") == viewer
    assert policy.scopes_for("agent") == viewer | {"notes:write", "tickets:write", "exports:write"}
    assert policy.scopes_for("admin") == ALL_SCOPES
    assert policy.diagnostics == {}


def test_principal_for_carries_role_scopes_and_transport(policy: Policy) -> None:
    principal = policy.principal_for("alice", "viewer", transport="http")
    assert (principal.id, principal.role, principal.transport) == ("alice", "viewer", "http")
    with pytest.raises(ConfigError, match="unknown role 'root'"):
        policy.principal_for("x", "root")


def test_per_tool_limits_and_paths(policy: Policy) -> None:
    assert policy.rate_for("export_ticket") == 10
    assert policy.rate_for("get_note") is None
    rule = policy.path_rule("read_doc")
    assert rule is not None
    assert rule.root == "docs"
    assert policy.path_rule("get_note") is None
    assert policy.blocked_for("read_doc") == DEFAULT_BLOCKED


def _from(text: str) -> Policy:
    return Policy.from_toml(text, source="test.toml")


def test_overrides_and_raw_diagnostics_are_read() -> None:
    policy = _from(
        '[roles.ops]\nscopes = ["docs:read"]\n'
        '[tools.read_doc]\nscope = "diagnostics:run"\nrate_per_minute = 3\n'
        'paths = { root = "docs", deny = ["*.draft.md"] }\n'
        '[diagnostics]\ntemplates = { uptime = { argv = ["/usr/bin/uptime"] } }\n'
    )
    assert policy.scope_for("read_doc", "docs:read") == "diagnostics:run"
    assert policy.scope_for("get_note", "notes:read") == "notes:read"
    assert policy.blocked_for("read_doc")[-1] == "*.draft.md"
    assert policy.diagnostics == {"templates": {"uptime": {"argv": ["/usr/bin/uptime"]}}}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("roles = 1", r"test.toml: roles: "),
        ("[roles]", r"roles: .*at least 1"),
        ('[roles.viewer]\nscopes = ["notes:raed"]', r"roles.viewer.scopes: unknown scope 'notes:raed'"),
        ('[roles.viewer]\nscopes = []\ncolour = "red"', r"roles.viewer.colour: unknown key"),
        ("[roles.Bad]\nscopes = []", r"role name 'Bad'"),
        ('[roles.v]\nscopes = []\n[tools.x]\nscope = "root"', r"tools.x.scope: unknown scope 'root'"),
        ("[roles.v]\nscopes = []\n[tools.x]\nrate_per_minute = 0", r"tools.x.rate_per_minute"),
        ('[roles.v]\nscopes = []\n[tools.x]\npaths = { root = "/etc" }', r"tools.x.paths.root"),
        ("[roles.v]\nscopes = []\n[extra]\na = 1", r"extra: unknown key"),
        ("[roles.v\n", r"not valid TOML"),
        (
            "[roles.v]\nscopes = []\n[sla.critical]\nfirst_response_minutes = 5\nresolution_minutes = 60",
            r"test.toml: sla: unknown priority 'critical' \(priorities: low, normal, high, urgent\)",
        ),
        (
            "[roles.v]\nscopes = []\n[sla.high]\nfirst_response_minutes = 5",
            r"sla.high.resolution_minutes: Field required",
        ),
        (
            "[roles.v]\nscopes = []\n[sla.high]\nfirst_response_minutes = 0\nresolution_minutes = 60",
            r"sla.high.first_response_minutes: Input should be greater than or equal to 1",
        ),
        (
            '[roles.v]\nscopes = []\n[sla.high]\nfirst_response_minutes = "30"\nresolution_minutes = 60',
            r"sla.high.first_response_minutes: Input should be a valid integer",
        ),
        (
            "[roles.v]\nscopes = []\n[sla.low]\nfirst_response_minutes = 60\nresolution_minutes = 9999999",
            r"sla.low.resolution_minutes: Input should be less than or equal to 527040",
        ),
        (
            "[roles.v]\nscopes = []\n[sla.low]\nfirst_response_minutes = 120\nresolution_minutes = 60",
            r"sla.low: first_response_minutes \(120\) is more than resolution_minutes \(60\)",
        ),
        (
            "[roles.v]\nscopes = []\n[sla.low]\nfirst_response_minutes = 1\nresolution_minutes = 2\nwarn = 1",
            r"sla.low.warn: unknown key",
        ),
    ],
)
def test_invalid_policy_files_are_config_errors_naming_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _from(text)


def test_the_built_in_sla_targets_are_the_shipped_defaults(policy: Policy) -> None:
    assert set(policy.sla) == {"urgent", "high", "normal", "low"}
    assert policy.sla_terms() == DEFAULT_TERMS


def test_a_priority_without_its_sla_table_gets_the_shipped_targets() -> None:
    policy = _from("[roles.v]\nscopes = []\n[sla.urgent]\nfirst_response_minutes = 15\nresolution_minutes = 120\n")
    terms = policy.sla_terms()
    assert terms["urgent"] == SlaTerms(first_response_minutes=15, resolution_minutes=120)
    assert {priority: terms[priority] for priority in ("high", "normal", "low")} == {
        priority: DEFAULT_TERMS[priority] for priority in ("high", "normal", "low")
    }
    assert _from("[roles.v]\nscopes = []").sla_terms() == DEFAULT_TERMS


def test_check_refuses_unknown_tools_and_unknown_roles_in_settings(policy: Policy) -> None:
    with pytest.raises(ConfigError, match=r"tools\.nope: unknown tool"):
        _from("[roles.v]\nscopes = []\n[tools.nope]\nrate_per_minute = 1").check(TOOLS)
    with pytest.raises(ConfigError, match="MCP_DESK_STDIO_ROLE: unknown role 'root'"):
        policy.check(TOOLS, roles_in_use={"MCP_DESK_STDIO_ROLE": "root"})


def test_load_reads_a_file_and_reports_unreadable_ones(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('[roles.solo]\nscopes = ["docs:read"]\n')
    assert Policy.load(path).role_names() == ["solo"]
    with pytest.raises(ConfigError, match="MCP_DESK_POLICY_FILE"):
        Policy.load(tmp_path / "missing.toml")


def test_policy_explain_prints_each_roles_tools_scopes_limits_and_paths(policy: Policy) -> None:
    out = io.StringIO()
    assert command_policy_explain(policy, None, TOOLS, out, default_rpm=60) == 0
    text = out.getvalue()
    assert [line for line in text.splitlines() if line.startswith("role ")] == [
        f"role {name}: {policy.roles[name].description}" for name in ("viewer", "agent", "admin")
    ]
    assert "tools (11 of 24)" in text
    assert "export_ticket" in text
    assert "10/min; paths under exports" in text
    assert "60/min (global)" in text
    assert "create_note (notes:write)" in text.split("not allowed: ")[1]


def test_policy_explain_shows_the_sla_targets_and_which_are_shipped_defaults() -> None:
    out = io.StringIO()
    assert command_policy_explain(Policy.load(), "viewer", TOOLS, out) == 0
    text = out.getvalue()
    assert "sla targets (from creation; time spent waiting does not count toward resolution):" in text
    assert "  urgent  first response 30 min, resolution 4 h\n" in text
    assert "  low     first response 1 d, resolution 7 d\n" in text
    assert "shipped default" not in text
    custom = _from("[roles.v]\nscopes = []\n[sla.high]\nfirst_response_minutes = 45\nresolution_minutes = 90\n")
    out = io.StringIO()
    assert command_policy_explain(custom, None, TOOLS, out) == 0
    assert "  high    first response 45 min, resolution 90 min\n" in out.getvalue()
    assert "  normal  first response 8 h, resolution 3 d  (shipped default)\n" in out.getvalue()


def test_policy_explain_for_one_role_and_for_an_unknown_role(policy: Policy) -> None:
    out = io.StringIO()
    assert command_policy_explain(policy, "admin", TOOLS, out) == 0
    assert "role viewer" not in out.getvalue()
    assert "not allowed: (none)" in out.getvalue()
    assert "notes: reads every owner's, changes every owner's" in out.getvalue()
    assert command_policy_explain(policy, "root", TOOLS, io.StringIO()) == 2


def test_policy_explain_shows_how_far_a_role_reads_and_changes_notes(policy: Policy) -> None:
    out = io.StringIO()
    assert command_policy_explain(policy, "agent", TOOLS, out) == 0
    assert "notes: reads own only, changes own only" in out.getvalue()
    assert "delete_note (notes:delete)" in out.getvalue().split("not allowed: ")[1]
    auditor = _from('[roles.auditor]\nscopes = ["notes:read", "notes:read_all"]')
    out = io.StringIO()
    assert command_policy_explain(auditor, "auditor", TOOLS, out) == 0
    assert "notes: reads every owner's, changes own only" in out.getvalue()


def test_policy_explain_shows_which_tools_require_confirmation(policy: Policy) -> None:
    out = io.StringIO()
    assert command_policy_explain(policy, "admin", TOOLS, out) == 0
    [line] = [line for line in out.getvalue().splitlines() if line.strip().startswith("delete_ticket")]
    assert "require_confirmation (refused when the client cannot ask the user)" in line
    [note] = [line for line in out.getvalue().splitlines() if line.strip().startswith("delete_note")]
    assert "require_confirmation" not in note
