"""The policy file: roles as bundles of scopes, per-tool overrides, SLA targets, macros and the raw diagnostics table.

TOML, loaded with `tomllib` and validated with pydantic at start: an unknown scope, role, tool or
key is a ConfigError naming the file and the key. The built-in default is `default_policy.toml`
beside this module; `MCP_DESK_POLICY_FILE` replaces it (it is not merged).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TextIO

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from mcp_desk.domain.macro import MACRO_NAME, Macro
from mcp_desk.domain.models import PRIORITIES, Priority
from mcp_desk.domain.principal import ALL_SCOPES, Principal
from mcp_desk.domain.sla import DEFAULT_TERMS, MAX_TARGET_MINUTES, SlaTerms
from mcp_desk.errors import ConfigError
from mcp_desk.policy.macros import MacroRule, check_macro_limits, explain_macros
from mcp_desk.policy.paths import DEFAULT_BLOCKED
from mcp_desk.policy.permissions import READ_ALL_NOTES, WRITE_ALL_NOTES, has_scope
from mcp_desk.policy.validation import InputLimits

ROLE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
Transport = Literal["stdio", "http", "memory"]


def _known_scope(scope: str) -> str:
    if scope not in ALL_SCOPES:
        raise ValueError(f"unknown scope {scope!r} (known: {', '.join(sorted(ALL_SCOPES))})")
    return scope


class PathRule(BaseModel):
    """Which configured folder a tool's path arguments live in, plus extra blocked patterns."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    root: Literal["docs", "exports"]
    deny: tuple[str, ...] = ()


class ToolRule(BaseModel):
    """Per-tool overrides."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    scope: str | None = None
    rate_per_minute: int | None = Field(default=None, ge=1)
    paths: PathRule | None = None
    require_confirmation: StrictBool = False

    @field_validator("scope")
    @classmethod
    def _scope(cls, value: str | None) -> str | None:
        return None if value is None else _known_scope(value)


class RoleRule(BaseModel):
    """A role: a description and its scopes."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    description: str = ""
    scopes: tuple[str, ...]

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_known_scope(scope) for scope in value)


class SlaRule(BaseModel):
    """`[sla.PRIORITY]`: the targets for tickets of one priority, in minutes from creation."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    first_response_minutes: StrictInt = Field(ge=1, le=MAX_TARGET_MINUTES)
    resolution_minutes: StrictInt = Field(ge=1, le=MAX_TARGET_MINUTES)

    @model_validator(mode="after")
    def _first_response_comes_first(self) -> SlaRule:
        if self.first_response_minutes > self.resolution_minutes:
            raise ValueError(
                f"first_response_minutes ({self.first_response_minutes}) is more than resolution_minutes "
                f"({self.resolution_minutes}): a ticket cannot be resolved in time yet answered late"
            )
        return self

    def terms(self) -> SlaTerms:
        """The domain's view of these targets."""
        return SlaTerms(first_response_minutes=self.first_response_minutes, resolution_minutes=self.resolution_minutes)


class PolicyFile(BaseModel):
    """The whole file as written."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    roles: dict[str, RoleRule] = Field(min_length=1)
    tools: dict[str, ToolRule] = {}
    sla: dict[str, SlaRule] = {}
    macros: dict[str, MacroRule] = {}
    diagnostics: dict[str, Any] = {}

    @field_validator("sla", mode="before")
    @classmethod
    def _sla_priorities(cls, value: object) -> object:
        for name in value if isinstance(value, dict) else ():
            if name not in PRIORITIES:
                raise ValueError(f"unknown priority {name!r} (priorities: {', '.join(PRIORITIES)})")
        return value

    @field_validator("roles")
    @classmethod
    def _role_names(cls, value: dict[str, RoleRule]) -> dict[str, RoleRule]:
        for name in value:
            if not ROLE_NAME.match(name):
                raise ValueError(f"role name {name!r} must match {ROLE_NAME.pattern}")
        return value

    @field_validator("macros", mode="before")
    @classmethod
    def _macro_names(cls, value: Any) -> Any:
        for name in value if isinstance(value, dict) else ():
            if not MACRO_NAME.match(name):
                raise ValueError(
                    f"macro name {name[:60]!r} must match {MACRO_NAME.pattern} (lower case, digits, - and _)"
                )
        return value


@dataclass(frozen=True, kw_only=True)
class Policy:
    """The validated policy; ask it for principals, scopes, limits and path rules."""

    roles: Mapping[str, RoleRule]
    tools: Mapping[str, ToolRule]
    diagnostics: Mapping[str, Any]
    source: str
    sla: Mapping[str, SlaRule] = field(default_factory=dict)
    macros: Mapping[str, Macro] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None = None) -> Policy:
        """Load `path`, or the built-in default when None; ConfigError on any problem."""
        if path is None:
            text = resources.files("mcp_desk.policy").joinpath("default_policy.toml").read_text(encoding="utf-8")
            return cls.from_toml(text, source="built-in policy")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"MCP_DESK_POLICY_FILE: cannot read {path}: {exc.__class__.__name__}") from None
        return cls.from_toml(text, source=str(path))

    @classmethod
    def from_toml(cls, text: str, *, source: str) -> Policy:
        """Parse and validate policy TOML."""
        try:
            parsed = PolicyFile.model_validate(tomllib.loads(text))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: not valid TOML: {exc}") from None
        except ValidationError as exc:
            raise ConfigError(f"{source}: {_first_error(exc)}") from None
        return cls(
            roles=parsed.roles,
            tools=parsed.tools,
            diagnostics=parsed.diagnostics,
            source=source,
            sla=parsed.sla,
            macros={name: rule.to_macro(name) for name, rule in parsed.macros.items()},
        )

    def check(
        self,
        tools: Mapping[str, str | None],
        *,
        roles_in_use: Mapping[str, str] | None = None,
        confirming: Collection[str] | None = None,
        limits: InputLimits | None = None,
    ) -> None:
        """Start-up cross-checks: `[tools.X]` must name real tools; roles named in settings must exist.

        With `confirming` (the tools that ask the user to confirm), `require_confirmation` is accepted on those only.
        With `limits` (the configured input limits), every macro's tags must fit them.
        """
        for name, rule in self.tools.items():
            if name not in tools:
                raise ConfigError(f"{self.source}: tools.{name}: unknown tool (known: {', '.join(sorted(tools))})")
            if confirming is not None and rule.require_confirmation and name not in confirming:
                raise ConfigError(
                    f"{self.source}: tools.{name}.require_confirmation: {name} never asks the user to confirm "
                    f"(only {', '.join(sorted(confirming)) or 'no tool'} can)"
                )
        for setting, role in (roles_in_use or {}).items():
            if role not in self.roles:
                raise ConfigError(f"{setting}: unknown role {role!r} (policy defines: {', '.join(self.roles)})")
        if limits is not None:
            self._check_macros(limits)

    def _check_macros(self, limits: InputLimits) -> None:
        for macro in self.macros.values():
            if broken := check_macro_limits(macro, limits):
                key, problem = broken
                raise ConfigError(f"{self.source}: macros.{macro.name}.{key}: {problem}")

    def sla_terms(self) -> dict[Priority, SlaTerms]:
        """The SLA targets of every priority: `[sla.PRIORITY]` where the file has it, else the shipped default."""
        return {
            priority: rule.terms() if (rule := self.sla.get(priority)) is not None else DEFAULT_TERMS[priority]
            for priority in PRIORITIES
        }

    def role_names(self) -> list[str]:
        """The defined roles, in file order."""
        return list(self.roles)

    def scopes_for(self, role: str) -> frozenset[str]:
        """The scopes a role grants; ConfigError for an unknown role."""
        rule = self.roles.get(role)
        if rule is None:
            raise ConfigError(f"unknown role {role!r} (policy defines: {', '.join(self.roles)})")
        return frozenset(rule.scopes)

    def principal_for(self, principal_id: str, role: str, transport: Transport = "stdio") -> Principal:
        """A Principal carrying the scopes of `role`."""
        return Principal(id=principal_id, role=role, scopes=self.scopes_for(role), transport=transport)

    def scope_for(self, tool: str, default_scope: str | None) -> str | None:
        """The scope a tool needs: the policy override, else the tool's own."""
        rule = self.tools.get(tool)
        return rule.scope if rule is not None and rule.scope is not None else default_scope

    def rate_for(self, tool: str) -> int | None:
        """The tool's own per-minute limit, if the policy sets one."""
        rule = self.tools.get(tool)
        return rule.rate_per_minute if rule is not None else None

    def confirmation_required(self) -> frozenset[str]:
        """The tools refused when the client cannot ask the user to confirm them."""
        return frozenset(name for name, rule in self.tools.items() if rule.require_confirmation)

    def path_rule(self, tool: str) -> PathRule | None:
        """Where the tool's path arguments live, if it takes any."""
        rule = self.tools.get(tool)
        return rule.paths if rule is not None else None

    def blocked_for(self, tool: str) -> tuple[str, ...]:
        """The blocked patterns for a tool's paths: the defaults plus the policy's `deny`."""
        rule = self.path_rule(tool)
        return DEFAULT_BLOCKED + (rule.deny if rule is not None else ())


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in err["loc"]) or "policy"
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = "unknown key"
    return f"{where}: {message}"


def command_policy_explain(
    policy: Policy, role: str | None, tools: Mapping[str, str | None], out: TextIO, *, default_rpm: int | None = None
) -> int:
    """`mcp-desk policy explain [--role R]`: each role's scopes, tools, limits and paths."""
    if role is not None and role not in policy.roles:
        out.write(f"error: unknown role {role!r} (policy defines: {', '.join(policy.roles)})\n")
        return 2
    out.write(f"policy: {policy.source}\n")
    for name in [role] if role is not None else policy.role_names():
        out.write("\n" + "\n".join(_explain_role(policy, name, tools, default_rpm)) + "\n")
    out.write("\n" + "\n".join(_explain_sla(policy)) + "\n")
    out.write("\n" + "\n".join(explain_macros(policy.macros.values())) + "\n")
    return 0


def _explain_sla(policy: Policy) -> list[str]:
    lines = ["sla targets (from creation; time spent waiting does not count toward resolution):"]
    for priority in reversed(PRIORITIES):
        terms = policy.sla_terms()[priority]
        origin = "" if priority in policy.sla else "  (shipped default)"
        lines.append(
            f"  {priority:<7} first response {_duration(terms.first_response_minutes)}, "
            f"resolution {_duration(terms.resolution_minutes)}{origin}"
        )
    return lines


def _duration(minutes: int) -> str:
    if minutes % (24 * 60) == 0:
        return f"{minutes // (24 * 60)} d"
    if minutes % 60 == 0:
        return f"{minutes // 60} h"
    return f"{minutes} min"


def _explain_role(policy: Policy, role: str, tools: Mapping[str, str | None], default_rpm: int | None) -> list[str]:
    principal = policy.principal_for(role, role)
    scopes = principal.scopes
    allowed: list[tuple[str, str | None]] = []
    refused: list[tuple[str, str | None]] = []
    for tool, default in sorted(tools.items()):
        scope = policy.scope_for(tool, default)
        (allowed if has_scope(principal, scope) else refused).append((tool, scope))
    lines = [f"role {role}: {policy.roles[role].description}".rstrip(": ")]
    lines.append(f"  scopes: {', '.join(sorted(scopes)) or '(none)'}")
    lines.append(f"  notes: {_note_reach(scopes)}")
    lines.append(f"  tools ({len(allowed)} of {len(tools)}):")
    lines += [
        f"    {tool:<18} {scope or '(no scope)':<16} {_limits(policy, tool, default_rpm)}" for tool, scope in allowed
    ]
    lines.append("  not allowed: " + (", ".join(f"{tool} ({scope})" for tool, scope in refused) or "(none)"))
    return lines


def _note_reach(scopes: frozenset[str]) -> str:
    reads = "every owner's" if READ_ALL_NOTES in scopes else "own only"
    changes = "every owner's" if WRITE_ALL_NOTES in scopes else "own only"
    return f"reads {reads}, changes {changes}"


def _limits(policy: Policy, tool: str, default_rpm: int | None) -> str:
    rate = policy.rate_for(tool)
    parts = [f"{rate}/min" if rate else (f"{default_rpm}/min (global)" if default_rpm else "global rate limit")]
    rule = policy.path_rule(tool)
    if rule is not None:
        parts.append(f"paths under {rule.root}" + (f", also denied: {', '.join(rule.deny)}" if rule.deny else ""))
    if tool in policy.confirmation_required():
        parts.append("require_confirmation (refused when the client cannot ask the user)")
    return "; ".join(parts)
