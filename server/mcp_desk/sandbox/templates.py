"""Diagnostic templates: named, allow-listed programs with typed parameters, loaded from TOML.

The model never supplies a program, an option or a shell string: it picks a template by name and
fills typed parameters, each substituted as one whole argv item. See docs/diagnostics.md.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mcp_desk.errors import CommandRejected, ConfigError, InvalidInput, quote
from mcp_desk.sandbox.denylist import check_program

PathResolver = Callable[[Path, str], Path]
"""`resolve(root, candidate) -> absolute path` under `root`, raising an AppError when refused."""

DEFAULT_TEMPLATES = Path(__file__).with_name("default_diagnostics.toml")
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
NAME = r"^[a-z][a-z0-9_]{0,47}$"
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
ParamValue = str | int


class _Param(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    description: str = ""


class EnumParam(_Param):
    """One of a fixed list of strings."""

    type: Literal["enum"]
    choices: list[str] = Field(min_length=1)
    default: str | None = None

    def parse(self, value: object) -> str:
        """The value if it is one of the choices."""
        if not isinstance(value, str) or value not in self.choices:
            raise InvalidInput(f"must be one of {', '.join(self.choices)}")
        return value


class IntParam(_Param):
    """A bounded integer."""

    type: Literal["int"]
    min: int
    max: int
    default: int | None = None

    def parse(self, value: object) -> int:
        """The value if it is an integer within [min, max]."""
        if isinstance(value, bool) or not isinstance(value, int) or not self.min <= value <= self.max:
            raise InvalidInput(f"must be an integer from {self.min} to {self.max}")
        return value


class StringParam(_Param):
    """A short string matching a pattern (full match), never containing control characters."""

    type: Literal["string"]
    pattern: str
    max_length: int = Field(default=200, ge=1, le=4096)
    default: str | None = None

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        re.compile(value)
        return value

    def parse(self, value: object) -> str:
        """The value if it is a string of bounded length that fully matches the pattern."""
        if not isinstance(value, str) or not 1 <= len(value) <= self.max_length:
            raise InvalidInput(f"must be a string of 1 to {self.max_length} characters")
        if CONTROL.search(value) or not re.fullmatch(self.pattern, value):
            raise InvalidInput(f"must match the pattern {self.pattern!r} without control characters")
        return value


class PathParam(_Param):
    """A relative path under a named allowed root, checked by the injected path resolver."""

    type: Literal["path"]
    root: str
    default: str | None = None


Param = Annotated[EnumParam | IntParam | StringParam | PathParam, Field(discriminator="type")]


class Template(BaseModel):
    """One diagnostic: an absolute program, a fixed argv template and typed parameters."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=NAME)
    description: str = Field(min_length=1, max_length=500)
    program: Path
    argv: list[str] = Field(default_factory=list, max_length=64)
    read_only: bool
    host_view: bool = False
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    max_output_bytes: int = Field(default=64 * 1024, ge=256, le=16 * 1024 * 1024)
    params: dict[str, Param] = Field(default_factory=dict)

    @field_validator("program")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError("program must be an absolute path")
        return value

    @model_validator(mode="after")
    def _placeholders(self) -> Template:
        used: set[str] = set()
        for index, item in enumerate(self.argv):
            for match in PLACEHOLDER.finditer(item):
                if match.group(0) != item:
                    raise ValueError(f"argv item {item!r}: a placeholder must be a whole argv item")
                used.add(self._check_placement(match.group(1), index))
        unused = sorted(set(self.params) - used)
        if unused:
            raise ValueError(f"param {unused[0]!r} is declared but not used in argv")
        if self.host_view and any(not isinstance(p, EnumParam | IntParam) for p in self.params.values()):
            raise ValueError("host_view templates may only take enum and int params")
        return self

    def _check_placement(self, name: str, index: int) -> str:
        param = self.params.get(name)
        if param is None:
            raise ValueError(f"placeholder {{{name}}} has no [params.{name}] table")
        if index < self.separator_index():
            if isinstance(param, IntParam) and param.min < 0:
                raise ValueError(f"param {name!r} before '--' must have min >= 0 (no leading '-')")
            if isinstance(param, EnumParam) and any(c.startswith("-") for c in param.choices):
                raise ValueError(f"param {name!r} before '--' may not offer choices starting with '-'")
        return name

    def separator_index(self) -> int:
        """Index of the first `--` in argv (len(argv) when absent): params after it are operands."""
        return self.argv.index("--") if "--" in self.argv else len(self.argv)

    def render(
        self, params: Mapping[str, Any] | None, *, resolve: PathResolver, roots: Mapping[str, Path]
    ) -> RenderedCommand:
        """Validate `params` and build the argv; InvalidInput/CommandRejected/resolver errors name the param."""
        given = dict(params or {})
        unknown = sorted(set(given) - set(self.params))
        if unknown:
            valid = ", ".join(sorted(self.params)) or "none"
            raise InvalidInput(f"{self.name}: unknown param {quote(unknown[0])!r} (valid: {valid})")
        values = {name: self._value(name, spec, given, resolve, roots) for name, spec in self.params.items()}
        argv = [str(self.program)]
        for index, item in enumerate(self.argv):
            match = PLACEHOLDER.fullmatch(item)
            argv.append(item if match is None else self._placed(match.group(1), values, index))
        return RenderedCommand(template=self, argv=tuple(argv), params=values)

    def _value(
        self, name: str, spec: Param, given: Mapping[str, Any], resolve: PathResolver, roots: Mapping[str, Path]
    ) -> ParamValue:
        raw = given.get(name, spec.default)
        if raw is None:
            raise InvalidInput(f"{self.name}: param {name!r} is required")
        try:
            if isinstance(spec, PathParam):
                return _resolve_path(raw, resolve=resolve, root=roots[spec.root])
            return spec.parse(raw)
        except InvalidInput as exc:
            raise InvalidInput(f"{self.name}: param {name!r} {exc.public}") from None

    def _placed(self, name: str, values: Mapping[str, ParamValue], index: int) -> str:
        text = str(values[name])
        if index < self.separator_index() and text.startswith("-"):
            raise CommandRejected(f"{self.name}: param {name!r} may not start with '-'")
        return text


def _resolve_path(raw: object, *, resolve: PathResolver, root: Path) -> str:
    if not isinstance(raw, str) or not raw or CONTROL.search(raw):
        raise InvalidInput("must be a relative path without control characters")
    resolved = resolve(root, raw)
    if not resolved.is_file():
        raise InvalidInput("must name a regular file")
    return str(resolved)


@dataclass(frozen=True, kw_only=True, slots=True)
class RenderedCommand:
    """A validated command: the argv to execute and the parameters that produced it (for audit)."""

    template: Template
    argv: tuple[str, ...]
    params: dict[str, ParamValue]


@dataclass(frozen=True, slots=True)
class Allowlist:
    """The configured templates by name, and the named roots their path params may use."""

    templates: Mapping[str, Template]
    roots: Mapping[str, Path]

    def __post_init__(self) -> None:
        for template in self.templates.values():
            check_program(template.program, template.name)

    @classmethod
    def unchecked_for_tests(cls, templates: Mapping[str, Template], roots: Mapping[str, Path]) -> Allowlist:
        """TESTS ONLY: build without the program deny-list so tests can run hostile shell scripts."""
        allowlist = object.__new__(cls)
        object.__setattr__(allowlist, "templates", templates)
        object.__setattr__(allowlist, "roots", roots)
        return allowlist

    def __iter__(self) -> Iterator[Template]:
        return iter(self.templates[name] for name in sorted(self.templates))

    def names(self) -> list[str]:
        """Template names, sorted."""
        return sorted(self.templates)

    def get(self, name: str) -> Template:
        """The template called `name`, or InvalidInput listing the valid names."""
        template = self.templates.get(name)
        if template is None:
            raise InvalidInput(f"unknown diagnostic {quote(name)!r}; valid names: {', '.join(self.names()) or 'none'}")
        return template


def parse_templates(table: Mapping[str, Any], *, roots: Mapping[str, Path], source: str) -> dict[str, Template]:
    """Parse a `[diagnostics]` table into templates; any problem is one ConfigError naming the entry."""
    templates: dict[str, Template] = {}
    for name, body in table.items():
        if not isinstance(body, Mapping):
            raise ConfigError(f"{source}: diagnostics.{name} must be a table")
        try:
            template = Template.model_validate({**body, "name": name})
        except ValidationError as exc:
            err = exc.errors(include_url=False, include_input=False)[0]
            where = ".".join(str(part) for part in err["loc"])
            raise ConfigError(f"{source}: diagnostics.{name}.{where}: {err['msg']}") from None
        for pname, param in template.params.items():
            if isinstance(param, PathParam) and param.root not in roots:
                raise ConfigError(f"{source}: diagnostics.{name}.params.{pname}: unknown root {param.root!r}")
        templates[name] = template
    return templates


def load_allowlist(policy_file: Path | None, *, roots: Mapping[str, Path]) -> Allowlist:
    """Templates from the policy file's `[diagnostics]` table, or the shipped defaults when it has none."""
    if policy_file is not None:
        table = _read_toml(policy_file).get("diagnostics")
        if table is not None:
            return Allowlist(parse_templates(table, roots=roots, source=str(policy_file)), roots)
    table = _read_toml(DEFAULT_TEMPLATES)["diagnostics"]
    templates = parse_templates(table, roots=roots, source="default diagnostics")
    # A host without procps (ps, free, uptime) simply offers fewer default diagnostics.
    return Allowlist({name: t for name, t in templates.items() if t.program.is_file()}, roots)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read diagnostics templates: {exc}") from None
