"""The image's runtime contract, run as a process: the entrypoint as uid 10001 on a read-only root.

No Docker engine here: the server starts exactly as the image's ENTRYPOINT/CMD with the image's ENV
and compose's environment, inside `unshare --mount` with `/` remounted read-only, only the data dir
(bind) and a tmpfs /tmp writable, and `setpriv` dropping to 10001:10001. Like `docker compose up` on a
fresh clone, there is no keys file: the first start creates one. The venv is made from /usr/bin/python3
so that uid can read the interpreter. Needs root and util-linux.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import dockerfile  # type: ignore[import-not-found]  # compiled BuildKit parser, ships no type information
import pytest

from tests.conftest import ok
from tests.e2e.support import connect
from tests.ops.deploy_support import (
    REPO,
    compose_config,
    dockerfile_env,
    dockerfile_healthcheck_argv,
    free_port,
    http_get,
    require,
    run,
    spawn,
    stop,
    tail,
    wait_for,
)

pytestmark = pytest.mark.slow

UID = 10001
SYSTEM_PYTHON = Path("/usr/bin/python3")
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Mirrors compose: a private mount namespace, the data dir stays writable, tmpfs /tmp, `/` read-only.
SANDBOX = (
    'data="$1"; shift; '
    'mount --bind "$data" "$data" && '
    "mount -t tmpfs -o size=64m,mode=1777 tmpfs /tmp && "
    "mount -o remount,bind,ro / && "
    f"exec setpriv --reuid {UID} --regid {UID} --clear-groups --no-new-privs " + '"$@"'
)


@dataclass(frozen=True, kw_only=True)
class Container:
    """A running server started as the image would start it."""

    proc: subprocess.Popen[bytes]
    log: Path
    data: Path
    env: dict[str, str]
    mcp_port: int
    health_port: int
    work: Path


def _image_argv() -> list[str]:
    entry = [c for c in dockerfile.parse_file(str(REPO / "Dockerfile")) if c.cmd.upper() in ("ENTRYPOINT", "CMD")]
    last = {c.cmd.upper(): list(c.value) for c in entry}
    return last["ENTRYPOINT"] + last["CMD"]


def _uv() -> str:
    candidate = REPO / ".tools" / "bin" / "uv"
    found = str(candidate) if candidate.exists() else shutil.which("uv")
    require(found, "uv not found: run `make install-dev` (it installs uv into .tools)")
    assert found is not None
    return found


@pytest.fixture(scope="module")
def image_venv() -> Iterator[Path]:
    """The project installed non-editable from uv.lock into a venv on the system Python."""
    require(os.geteuid() == 0, "the container contract needs root (unshare, mount, setpriv)")
    for command in ("unshare", "setpriv", "nsenter", "mount"):
        require(shutil.which(command), f"{command} not found: apt-get install util-linux mount")
    require(SYSTEM_PYTHON.exists(), f"{SYSTEM_PYTHON} not found: apt-get install python3 python3-venv")
    venv = Path(tempfile.mkdtemp(prefix="mcp-desk-image-venv-", dir="/var/tmp"))
    try:
        venv.chmod(0o755)
        env = {
            **os.environ,
            "UV_PROJECT_ENVIRONMENT": str(venv),
            "UV_PYTHON": str(SYSTEM_PYTHON),
            "UV_PYTHON_DOWNLOADS": "never",
            "UV_LINK_MODE": "copy",
        }
        result = run(
            [_uv(), "sync", "--frozen", "--no-dev", "--no-editable", "--quiet"], env=env, cwd=REPO, timeout=600
        )
        assert result.returncode == 0, result.stderr[-4000:]
        run(["chmod", "-R", "a+rX", str(venv)])
        yield venv
    finally:
        shutil.rmtree(venv, ignore_errors=True)


@pytest.fixture(scope="module")
def container(image_venv: Path) -> Iterator[Container]:
    """`mcp-desk http` as the image's entrypoint, with the image's ENV, as uid 10001 on a read-only root."""
    work = Path(tempfile.mkdtemp(prefix="mcp-desk-contract-", dir="/var/tmp"))
    try:
        yield from _started(image_venv, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _started(image_venv: Path, work: Path) -> Iterator[Container]:
    """Start the server in `work`, yield it, and stop it (SIGTERM, then SIGKILL) afterwards."""
    work.chmod(0o755)
    data = work / "data"
    if not data.exists():
        data.mkdir(mode=0o750)
        os.chown(data, UID, UID)
    mcp_port, health_port = free_port(), free_port()
    compose_env = compose_config()["services"]["mcp-desk"]["environment"]
    env = dockerfile_env()
    env.update({k: v for k, v in compose_env.items() if k.startswith("MCP_DESK_")})
    env.update(
        PATH=env["PATH"].replace("/opt/venv/bin", str(image_venv / "bin")).replace("$PATH", BASE_PATH),
        LANG="C.UTF-8",
        # Test-only overrides: loopback binds and free ports (tests never listen beyond 127.0.0.1),
        # the data dir instead of /data (the keys file inside it, as /data/api_keys), and hosts/origins.
        MCP_DESK_HOST="127.0.0.1",
        MCP_DESK_PORT=str(mcp_port),
        MCP_DESK_HEALTH_HOST="127.0.0.1",
        MCP_DESK_HEALTH_PORT=str(health_port),
        MCP_DESK_STORAGE_PATH=str(data),
        MCP_DESK_EXPORT_PATH=str(data / "exports"),
        MCP_DESK_AUDIT_LOG_PATH=str(data / "audit.jsonl"),
        MCP_DESK_API_KEYS_FILE=str(data / "api_keys"),
        MCP_DESK_ALLOWED_HOSTS=json.dumps([f"127.0.0.1:{mcp_port}"]),
        MCP_DESK_ALLOWED_ORIGINS=json.dumps([f"http://127.0.0.1:{mcp_port}"]),
        MCP_DESK_SHUTDOWN_GRACE_SECONDS=compose_config()["services"]["mcp-desk"]["environment"][
            "MCP_DESK_SHUTDOWN_GRACE_SECONDS"
        ],
    )
    assert env["MCP_DESK_ENVIRONMENT"] == "production"
    assert env["MCP_DESK_BOOTSTRAP_ADMIN_KEY"] == "true"
    log = work / f"mcp_desk-{len(list(work.glob('mcp_desk-*.log')))}.log"
    argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", SANDBOX, "sh", str(data), *_image_argv()]
    proc = spawn(argv, log=log, env=env, cwd="/")
    try:
        wait_for(f"http://127.0.0.1:{health_port}/health/ready", proc=proc, log=log, deadline_seconds=60)
        yield Container(proc=proc, log=log, data=data, env=env, mcp_port=mcp_port, health_port=health_port, work=work)
    finally:
        stop(proc, timeout=60)


def _inside(c: Container, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run argv in the server's mount namespace as the image's user, with the image's environment."""
    drop = ["setpriv", "--reuid", str(UID), "--regid", str(UID), "--clear-groups", "--no-new-privs"]
    return run(["nsenter", "--target", str(c.proc.pid), "--mount", "--", *drop, *argv], env=c.env, cwd="/")


def test_server_runs_as_uid_and_gid_10001_without_groups(container: Container) -> None:
    status = Path(f"/proc/{container.proc.pid}/status").read_text()
    assert re.search(rf"^Uid:\s+{UID}\s+{UID}\s+{UID}\s+{UID}$", status, flags=re.MULTILINE), status
    assert re.search(rf"^Gid:\s+{UID}\s+{UID}\s+{UID}\s+{UID}$", status, flags=re.MULTILINE), status
    assert re.search(r"^Groups:\s*$", status, flags=re.MULTILINE), status
    argv = Path(f"/proc/{container.proc.pid}/cmdline").read_bytes().split(b"\0")
    assert argv[-2] == b"http", argv  # the entrypoint itself, no shell or setpriv left in between


def test_root_filesystem_is_read_only_for_the_server(container: Container) -> None:
    result = _inside(container, ["python", "-c", "open('/var/tmp/mcp-desk-contract-probe', 'w')"])
    assert result.returncode != 0
    assert "Read-only file system" in result.stderr
    assert not Path("/var/tmp/mcp-desk-contract-probe").exists()  # noqa: S108  # the path the server tried to write


def test_only_the_data_volume_and_tmp_are_writable(container: Container) -> None:
    probe = container.data / "probe"
    script = f"open({str(probe)!r}, 'w').write('x'); open('/tmp/probe', 'w').write('x')"
    result = _inside(container, ["python", "-c", script])
    assert result.returncode == 0, result.stderr
    assert probe.read_text() == "x"
    assert probe.stat().st_uid == UID


def test_data_volume_receives_the_database(container: Container) -> None:
    assert (container.data / "mcp-desk.db").is_file()
    assert (container.data / "mcp-desk.db").stat().st_uid == UID


def test_the_dockerfile_healthcheck_command_passes_and_the_stack_is_healthy_not_degraded(
    container: Container,
) -> None:
    """The image chooses its sandbox mode, so /health reports it as chosen and no alert fires."""
    result = _inside(container, dockerfile_healthcheck_argv())
    assert result.returncode == 0, result.stdout + result.stderr
    code, body = http_get(f"http://127.0.0.1:{container.health_port}/health")
    health = json.loads(body)
    assert code == 200
    assert health["status"] == "healthy", body
    assert health["checks"]["sandbox"]["status"] == "ok"


def _printed_keys(log: Path) -> list[str]:
    return re.findall(r"FIRST START: ADMIN API KEY.*?\n  key:\s+(mcpd_\S+)\n", log.read_text(), flags=re.DOTALL)


@pytest.mark.anyio
async def test_the_first_start_prints_one_admin_key_that_works_for_tool_calls(container: Container) -> None:
    (key,) = _printed_keys(container.log)
    keys_file = container.data / "api_keys"
    assert key not in keys_file.read_text()
    assert keys_file.stat().st_uid == UID
    assert keys_file.stat().st_mode & 0o777 == 0o600
    with anyio.fail_after(60):
        async with connect(f"http://127.0.0.1:{container.mcp_port}/mcp", key) as client:
            created = ok(await client.call_tool("create_ticket", {"title": "from the image", "description": "d"}))
            assert created["id"]


def test_production_image_refuses_mcp_calls_without_a_key(container: Container) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{container.mcp_port}/mcp",
        data=b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}',
        headers={"Content-Type": "application/json", "Accept": "application/json, text/event-stream"},
        method="POST",
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with pytest.raises(urllib.error.HTTPError) as refused:
        opener.open(request, timeout=5)
    refused.value.close()
    assert refused.value.code == 401


def test_keys_can_be_added_and_listed_inside_the_running_container(container: Container) -> None:
    """`docker compose exec mcp-desk mcp-desk keys create ... --append`, as the image's user."""
    created = _inside(container, ["mcp-desk", "keys", "create", "--principal", "bot", "--role", "agent", "--append"])
    assert created.returncode == 0, created.stderr
    listed = _inside(container, ["mcp-desk", "keys", "list", "--json"])
    assert [(k["principal"], k["role"]) for k in json.loads(listed.stdout)] == [("admin", "admin"), ("bot", "agent")]


def test_sigterm_exits_0_within_the_compose_stop_grace_period(container: Container) -> None:
    """Runs after the other checks of the shared server: it stops it."""
    grace = compose_config()["services"]["mcp-desk"]["stop_grace_period"]
    seconds = float(re.fullmatch(r"(\d+)s", grace).group(1))  # type: ignore[union-attr]  # compose normalises to "<n>s"
    started = time.monotonic()
    container.proc.send_signal(signal.SIGTERM)
    try:
        code = container.proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        pytest.fail(f"no exit within stop_grace_period {grace}: compose would SIGKILL\n{tail(container.log)}")
    assert code == 0, f"exit {code} after {time.monotonic() - started:.1f}s\n{tail(container.log)}"


def test_a_restart_on_the_same_data_prints_no_new_key(container: Container, image_venv: Path) -> None:
    """Runs last: the shared server has stopped; a second start on its data volume keeps the keys and prints none."""
    assert container.proc.poll() is not None
    before = (container.data / "api_keys").read_text()
    for again in _started(image_venv, container.work):
        assert _printed_keys(again.log) == []
        assert "FIRST START" not in again.log.read_text()
    assert (container.data / "api_keys").read_text() == before
