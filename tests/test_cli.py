"""The command line: configuration errors, check-config, keys, policy explain, audit verify."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from mcp_desk.app import create_app
from mcp_desk.cli import run
from mcp_desk.config import load_settings
from tests.conftest import KB, connected


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MCP_DESK_STORAGE_PATH", str(tmp_path / "data"))
    monkeypatch.setenv("MCP_DESK_DOCS_PATH", str(KB))


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def test_check_config_prints_the_effective_config_with_secrets_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_DESK_AUDIT_HMAC_KEY", "3f2a9c1d8e7b6a5f4e3d2c1b0a998877")
    code, out, _ = cli("check-config")
    shown = json.loads(out)
    assert code == 0
    assert shown["MCP_DESK_AUDIT_HMAC_KEY"] == "**********"
    assert shown["MCP_DESK_PORT"] == 8000
    assert "3f2a9c1d8e7b6a5f4e3d2c1b0a998877" not in out


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("MCP_DESK_PORT", "eighty", "MCP_DESK_PORT: Input should be a valid integer"),
        ("MCP_DESK_RATE_LIMIT_RPM", "0", "MCP_DESK_RATE_LIMIT_RPM: Input should be greater than or equal to 1"),
        ("MCP_DESK_ENVIRONMENT", "prod", "MCP_DESK_ENVIRONMENT: Input should be 'development', 'staging' or"),
        ("MCP_DESK_STDIO_ROLE", "superuser", "MCP_DESK_STDIO_ROLE"),
        ("MCP_DESK_TYPO", "1", "MCP_DESK_TYPO: unknown setting"),
    ],
)
def test_bad_configuration_is_one_line_naming_the_key(
    monkeypatch: pytest.MonkeyPatch, key: str, value: str, message: str
) -> None:
    monkeypatch.setenv(key, value)
    code, out, err = cli("check-config")
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1
    assert message in err


def test_a_public_bind_without_authentication_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_DESK_HOST", "0.0.0.0")  # noqa: S104  # the insecure setup under test
    code, _, err = cli("check-config")
    assert code == 1
    assert "MCP_DESK_API_KEYS_FILE" in err or "authentication" in err


def test_keys_create_prints_a_key_once_and_a_line_without_it(tmp_path: Path) -> None:
    code, out, _ = cli("keys", "create", "--principal", "alice", "--role", "agent", "--json")
    created = json.loads(out)
    assert code == 0
    assert (created["principal"], created["role"]) == ("alice", "agent")
    assert created["key"].startswith("mcpd_")
    assert created["key"] not in created["line"]
    keys = tmp_path / "keys"
    keys.write_text(created["line"] + "\n")
    code, out, err = cli("keys", "create", "--principal", "bob", "--role", "nobody")
    assert code != 0
    assert "nobody" in err


def test_policy_explain_lists_roles_tools_and_diagnostics() -> None:
    code, out, _ = cli("policy", "explain", "--role", "viewer")
    allowed, refused = out.split("not allowed:")
    assert code == 0
    assert "get_ticket" in allowed
    assert "create_note" not in allowed
    assert "delete_ticket (tickets:delete)" in refused
    code, out, _ = cli("policy", "explain")
    assert "admin" in out
    assert "disk_usage" in out


@pytest.mark.anyio
async def test_audit_verify_reports_a_clean_and_a_tampered_log(tmp_path: Path) -> None:
    app = create_app(load_settings(env_file=None), transport="memory")
    async with connected(app) as client:
        for i in range(3):
            await client.call_tool("create_note", {"title": f"n{i}", "body": "b"})
    log = app.settings.resolved_audit_log_path
    code, out, _ = cli("audit", "verify")
    assert code == 0, out
    lines = log.read_text().splitlines()
    lines[1] = lines[1].replace('"create_note"', '"delete_note"')
    log.write_text("\n".join(lines) + "\n")
    code, out, _ = cli("audit", "verify", str(log))
    assert code == 1
    assert "line 2" in out
    assert cli("audit", "verify", str(tmp_path / "none.jsonl"))[0] == 2


def test_version_prints_the_package_version() -> None:
    from importlib.metadata import version

    out = io.StringIO()
    with pytest.raises(SystemExit) as exited, contextlib.redirect_stdout(out):
        run(["--version"])
    assert exited.value.code == 0
    assert out.getvalue().strip() == f"mcp-desk {version('mcp-desk')}"


def test_keys_create_append_list_and_revoke_work_before_any_keys_file_exists(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    keys = tmp_path / "secrets" / "api_keys"
    keys.parent.mkdir()
    monkeypatch.setenv("MCP_DESK_API_KEYS_FILE", str(keys))
    assert json.loads(cli("keys", "list", "--json")[1]) == []
    code, out, _ = cli("keys", "create", "--principal", "alice", "--role", "agent", "--json", "--append")
    created = json.loads(out)
    assert code == 0
    assert keys.read_text() == created["line"] + "\n"
    assert keys.stat().st_mode & 0o777 == 0o600
    code, out, _ = cli("keys", "list", "--json")
    key_id = created["key"][5:17]
    assert json.loads(out) == [{"key_id": key_id, "principal": "alice", "role": "agent"}]
    assert cli("keys", "revoke", key_id)[0] == 0
    assert json.loads(cli("keys", "list", "--json")[1]) == []
    code, _, err = cli("keys", "revoke", key_id)
    assert code == 1
    assert "no key with id" in err


def test_keys_append_without_a_configured_keys_file_says_what_is_missing() -> None:
    code, out, err = cli("keys", "create", "--principal", "alice", "--role", "agent", "--append")
    assert code == 1
    assert out == ""
    assert "MCP_DESK_API_KEYS_FILE" in err


def test_keys_create_checks_roles_of_a_configured_policy_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MCP_DESK_POLICY_FILE", str(tmp_path / "missing.toml"))
    code, _, err = cli("keys", "create", "--principal", "alice", "--role", "agent")
    assert code == 1
    assert "MCP_DESK_POLICY_FILE" in err


def test_bootstrap_needs_the_policy_to_define_the_admin_role(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[roles.viewer]\nscopes = ["notes:read"]\n')
    monkeypatch.setenv("MCP_DESK_POLICY_FILE", str(policy))
    monkeypatch.setenv("MCP_DESK_API_KEYS_FILE", str(tmp_path / "api_keys"))
    monkeypatch.setenv("MCP_DESK_BOOTSTRAP_ADMIN_KEY", "true")
    code, _, err = cli("http")
    assert code == 1
    assert "MCP_DESK_BOOTSTRAP_ADMIN_KEY: the policy defines no role 'admin'" in err
    assert not (tmp_path / "api_keys").exists()


@pytest.mark.anyio
async def test_audit_verify_checks_every_replica_chain_in_the_configured_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    folder = tmp_path / "audit"
    monkeypatch.setenv("MCP_DESK_AUDIT_LOG_PATH", str(folder))
    for replica in ("a", "b"):
        monkeypatch.setenv("MCP_DESK_REPLICA_ID", replica)
        app = create_app(load_settings(env_file=None), transport="memory")
        async with connected(app) as client:
            await client.call_tool("create_note", {"title": f"from {replica}", "body": "b"})
    assert sorted(p.name for p in folder.iterdir()) == ["a.jsonl", "b.jsonl"]
    code, out, _ = cli("audit", "verify")
    assert code == 0, out
    assert f"in {folder / 'a.jsonl'}" in out
    assert f"in {folder / 'b.jsonl'}" in out
    lines = (folder / "b.jsonl").read_text().splitlines()
    (folder / "b.jsonl").write_text("\n".join(lines[1:]) + "\n")
    code, out, _ = cli("audit", "verify")
    assert code == 1
    assert f"FAILED: {folder / 'b.jsonl'} line 1" in out


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("[tools.create_note]\nrequire_confirmation = true", "tools.create_note.require_confirmation: create_note"),
        ("[tools.delete_note]\nrequire_confirmation = 1", "tools.delete_note.require_confirmation: Input should be"),
    ],
)
def test_check_config_refuses_require_confirmation_where_it_cannot_apply(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, table: str, message: str
) -> None:
    policy = tmp_path / "policy.toml"
    default = (KB.parents[1] / "server" / "mcp_desk" / "policy" / "default_policy.toml").read_text()
    policy.write_text(f"{default}\n{table}\n")
    monkeypatch.setenv("MCP_DESK_POLICY_FILE", str(policy))
    code, _, err = cli("check-config")
    assert code == 1
    assert message in err


def test_policy_explain_marks_the_tools_that_require_confirmation() -> None:
    code, out, _ = cli("policy", "explain", "--role", "admin")
    assert code == 0
    [line] = [line for line in out.splitlines() if line.strip().startswith("delete_ticket")]
    assert "require_confirmation" in line


def test_check_config_refuses_sla_targets_in_the_wrong_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    default = (KB.parents[1] / "server" / "mcp_desk" / "policy" / "default_policy.toml").read_text()
    policy.write_text(default.replace("first_response_minutes = 30\n", "first_response_minutes = 300\n"))
    monkeypatch.setenv("MCP_DESK_POLICY_FILE", str(policy))
    code, _, err = cli("check-config")
    assert code == 1
    assert f"{policy}: sla.urgent: first_response_minutes (300) is more than resolution_minutes (240)" in err


def test_policy_explain_lists_the_sla_targets_by_priority() -> None:
    code, out, _ = cli("policy", "explain", "--role", "agent")
    assert code == 0
    targets = out.split("sla targets")[1].split("\n\n")[0].splitlines()[1:]
    assert [line.split()[0] for line in targets] == ["urgent", "high", "normal", "low"]
    assert "  high    first response 2 h, resolution 1 d" in targets


@pytest.mark.parametrize(
    ("env", "table", "message"),
    [
        ({}, '[macros.m]\ndescription = "d"\nreply = "Hi {name}"', "macros.m.reply: unknown field {name}"),
        ({}, '[macros.m]\ndescription = "d"\nstatus = "done"', "macros.m.status: Input should be"),
        ({"MCP_DESK_MAX_TAGS": "1"}, '[macros.m]\ndescription = "d"\nadd_tags = ["a", "b"]', "(MCP_DESK_MAX_TAGS)"),
    ],
)
def test_check_config_refuses_a_bad_macro_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str], table: str, message: str
) -> None:
    policy = tmp_path / "policy.toml"
    default = (KB.parents[1] / "server" / "mcp_desk" / "policy" / "default_policy.toml").read_text()
    policy.write_text(f"{default}\n{table}\n")
    monkeypatch.setenv("MCP_DESK_POLICY_FILE", str(policy))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    code, out, err = cli("check-config")
    assert (code, out) == (1, "")
    assert message in err


def test_policy_explain_shows_the_macros() -> None:
    code, out, _ = cli("policy", "explain", "--role", "agent")
    assert code == 0
    macros = out.split("macros (apply_macro")[1]
    assert "  printer-resolved: Printer back online" in macros
    assert "    does: status → resolved; adds tags printer; posts a public reply" in macros
