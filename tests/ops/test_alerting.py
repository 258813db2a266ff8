"""Alerts that reach someone: Prometheus sends to the compose `alertmanager`, whose shipped config keeps
every alert visible and, with ALERTMANAGER_WEBHOOK_URL, posts it to a webhook; every alert has a runbook."""

from __future__ import annotations

import json
import os
import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.ops.deploy_support import (
    REPO,
    compose_config,
    ensure_alertmanager,
    free_port,
    load_yaml,
    run,
    spawn,
    stop,
    wait_for,
)

ALERTMANAGER_DIR = REPO / "alertmanager"
START = ALERTMANAGER_DIR / "start.sh"
RUNBOOK_PREFIX = "https://github.com/mcp-desk/mcp-desk/blob/main/"
# Stands in for the image's `alertmanager` binary: records the argv and the config it was given.
RECORDER = """#!/bin/sh
printf '%s\\n' "$@" > "$RECORD_DIR/argv"
for arg in "$@"; do
    case "$arg" in --config.file=*) cp "${arg#--config.file=}" "$RECORD_DIR/config.yml" ;; esac
done
"""


def _alerts() -> list[dict[str, Any]]:
    groups = load_yaml(REPO / "prometheus" / "alerts.yml")["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def _start(tmp_path: Path, **env: str) -> tuple[int, str, Path]:
    """Run alertmanager/start.sh as the container would, with the recorder as `alertmanager`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    recorder = bin_dir / "alertmanager"
    recorder.write_text(RECORDER)
    recorder.chmod(0o755)
    full = {"PATH": f"{bin_dir}:/usr/bin:/bin", "RECORD_DIR": str(tmp_path), "TMPDIR": str(tmp_path), **env}
    result = run(["sh", str(START)], env=full)
    return result.returncode, result.stderr, tmp_path / "config.yml"


def test_prometheus_sends_alerts_to_the_alertmanager_service() -> None:
    config = load_yaml(REPO / "prometheus.yml")
    targets = [t for am in config["alerting"]["alertmanagers"] for sc in am["static_configs"] for t in sc["targets"]]
    assert targets == ["alertmanager:9093"]
    services = compose_config()["services"]
    assert "alertmanager" in services
    assert services["prometheus"]["depends_on"]["alertmanager"]["condition"] == "service_healthy"
    assert "backend" in services["alertmanager"]["networks"]
    assert services["alertmanager"].get("ports", []) == []


def test_shipped_alertmanager_config_passes_amtool_and_keeps_alerts_without_a_receiver(tmp_path: Path) -> None:
    _, amtool = ensure_alertmanager()
    result = run([amtool, "check-config", str(ALERTMANAGER_DIR / "alertmanager.yml")])
    assert result.returncode == 0, result.stdout + result.stderr
    code, err, config = _start(tmp_path)
    assert code == 0, err
    assert "kept and shown in Alertmanager" in err
    assert config.read_text() == (ALERTMANAGER_DIR / "alertmanager.yml").read_text()
    argv = (tmp_path / "argv").read_text().splitlines()
    assert "--storage.path=/alertmanager" in argv
    (receiver,) = load_yaml(config)["receivers"]
    assert set(receiver) == {"name"}


def test_a_webhook_url_from_the_environment_becomes_the_receiver_and_passes_amtool(tmp_path: Path) -> None:
    _, amtool = ensure_alertmanager()
    url = "https://hooks.example.com/services/T0/B0?token=a&x=1"
    code, err, config = _start(tmp_path, ALERTMANAGER_WEBHOOK_URL=url)
    assert code == 0, err
    result = run([amtool, "check-config", str(config)])
    assert result.returncode == 0, result.stdout + result.stderr
    (receiver,) = load_yaml(config)["receivers"]
    assert receiver["webhook_configs"][0]["url"] == url
    assert load_yaml(config)["route"]["receiver"] == receiver["name"]
    assert url not in err


@pytest.mark.parametrize("url", ["ftp://example.com/x", 'https://e.com/"a', "https://e.com/a b", "https://e.com/\\x"])
def test_a_webhook_url_that_could_break_the_config_is_refused(tmp_path: Path, url: str) -> None:
    code, err, config = _start(tmp_path, ALERTMANAGER_WEBHOOK_URL=url)
    assert code == 78
    assert "ALERTMANAGER_WEBHOOK_URL" in err
    assert not config.exists()


def test_every_alert_links_a_runbook_section_in_docs() -> None:
    runbooks = {
        re.sub(r"[^a-z0-9 -]", "", line[3:].strip().lower()).replace(" ", "-")
        for line in (REPO / "docs" / "runbooks.md").read_text().splitlines()
        if line.startswith("## ")
    }
    for rule in _alerts():
        url = rule["annotations"]["runbook_url"]
        assert url.startswith(RUNBOOK_PREFIX), url
        path, _, anchor = url.removeprefix(RUNBOOK_PREFIX).partition("#")
        assert (REPO / path).is_file(), url
        assert path.startswith("docs/")
        assert anchor in runbooks, f"{rule['alert']}: no section #{anchor} in {path}"


@pytest.mark.slow
def test_a_real_alertmanager_on_the_shipped_config_lists_the_alerts_it_receives(tmp_path: Path) -> None:
    """With no receiver configured nothing is lost: what Prometheus sends stays visible in the API."""
    alertmanager, _ = ensure_alertmanager()
    port = free_port()
    argv = [
        alertmanager,
        f"--config.file={ALERTMANAGER_DIR / 'alertmanager.yml'}",
        f"--storage.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    log = tmp_path / "alertmanager.log"
    proc = spawn(argv, log=log, env={**os.environ}, cwd=tmp_path)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(f"{base}/-/ready", proc=proc, log=log, deadline_seconds=30)
        alert = [{"labels": {"alertname": "McpDeskDown", "severity": "critical", "job": "mcp-desk"}}]
        request = urllib.request.Request(  # noqa: S310  # loopback URL built above
            f"{base}/api/v2/alerts",
            data=json.dumps(alert).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as posted:  # noqa: S310  # loopback URL built above
            assert posted.status == 200
        with urllib.request.urlopen(f"{base}/api/v2/alerts", timeout=10) as listed:  # noqa: S310  # idem
            shown = json.loads(listed.read())
        assert [a["labels"]["alertname"] for a in shown] == ["McpDeskDown"]
        assert shown[0]["receivers"] == [{"name": "keep"}]
    finally:
        stop(proc)
