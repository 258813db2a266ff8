"""Programs a diagnostic template may never name: shells, interpreters, and programs that run programs.

The rule (docs/diagnostics.md): a template's program must be an executable regular file whose name,
and the name of the file it resolves to through symlinks, is not on this list; a script (`#!`) is
judged by its interpreter too. Options (argv items starting with `-`) come only from the template,
and a parameter value may start with `-` only when it sits after `--`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from mcp_desk.errors import ConfigError

SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "mksh", "pdksh", "csh", "tcsh", "fish", "ash", "rbash", "yash"})
# Each of these can start another program through an option, a script or an escape.
RUNS_PROGRAMS = frozenset(
    {
        # wrappers whose argument is a command
        "env", "xargs", "sudo", "su", "doas", "pkexec", "runuser", "setpriv", "nice", "ionice", "nohup",
        "timeout", "chroot", "setsid", "stdbuf", "unbuffer", "flock", "watch", "time", "script", "chrt",
        "taskset", "prlimit", "unshare", "nsenter", "capsh", "bwrap", "firejail", "systemd-run", "busybox",
        "toybox", "strace", "ltrace", "gdb", "valgrind", "parallel", "expect", "at", "batch", "crontab",
        # programs with an exec option, hook or escape
        "find", "git", "tar", "zip", "rsync", "scp", "sftp", "ssh", "make", "awk", "gawk", "mawk", "nawk",
        "sed", "ed", "vi", "vim", "nvim", "view", "ex", "emacs", "nano", "less", "more", "most", "man",
        "pager", "sensible-pager", "tmux", "screen", "docker", "podman", "kubectl", "dpkg", "apt", "apt-get",
        "rpm", "pip", "pip3", "npm", "npx", "curl", "wget", "nc", "ncat", "netcat", "socat", "openssl",
        "mail", "mutt", "ftp", "telnet", "dc", "bc", "m4", "cpio", "install", "journalctl-pager",
    }
)  # fmt: skip
INTERPRETER = re.compile(
    r"^(python|pypy|perl|ruby|irb|php|node|nodejs|deno|bun|lua|luajit|tclsh|wish|guile|racket|"
    r"rscript|r|julia|java|jshell|groovy|scala|osascript|pwsh|powershell|erl|escript|elixir|ghci)"
    r"[0-9.]*(-[a-z0-9.]+)?$"
)


def denied_reason(name: str) -> str | None:
    """Why a program called `name` may not be a template's program, or None if it may."""
    lowered = name.lower()
    if lowered in SHELLS:
        return "is a shell"
    if INTERPRETER.match(lowered):
        return "is an interpreter"
    if lowered in RUNS_PROGRAMS:
        return "can run other programs through its options"
    return None


def check_program(program: Path, template: str) -> None:
    """Refuse (ConfigError) a program that is missing, not executable, or denied by name or interpreter."""
    if not program.is_absolute() or not program.is_file() or not os.access(program, os.X_OK):
        raise ConfigError(f"diagnostics.{template}: program {str(program)!r} is not an executable file")
    for candidate in (program, program.resolve(), *_interpreters(program.resolve())):
        reason = denied_reason(candidate.name)
        if reason is not None:
            raise ConfigError(f"diagnostics.{template}: program {str(program)!r} {reason} ({candidate.name})")


def _interpreters(program: Path) -> list[Path]:
    with program.open("rb") as handle:
        head = handle.read(256)
    if not head.startswith(b"#!"):
        return []
    words = head[2:].split(b"\n", 1)[0].decode("utf-8", "replace").split()
    return [Path(word) for word in words[:2]] if words else [Path("sh")]
