"""Defaults that matter outside a checkout: data in the user's data directory, the packaged knowledge
base, exports under the storage path, and a sandbox mode chosen by the operator reported as healthy."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_desk.config import PACKAGE_DIR, Settings, default_docs_path
from tests.conftest import KB, MakeApp

pytestmark = pytest.mark.anyio


def test_storage_defaults_to_the_user_data_directory_never_the_working_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    monkeypatch.chdir(tmp_path)
    settings = Settings(_env_file=None)
    assert settings.storage_path == tmp_path / "share" / "mcp-desk"
    assert not settings.storage_path.is_relative_to(Path.cwd() / "data")
    assert settings.export_path == settings.storage_path / "exports"
    assert settings.database_path.parent == settings.storage_path


def test_exports_follow_a_configured_storage_path_unless_set_themselves(tmp_path: Path) -> None:
    assert Settings(_env_file=None, storage_path=tmp_path).export_path == tmp_path / "exports"
    assert Settings(_env_file=None, storage_path=tmp_path, export_path=tmp_path / "x").export_path == tmp_path / "x"


def test_the_knowledge_base_defaults_to_the_packaged_copy_or_this_checkouts_docs_kb() -> None:
    found = default_docs_path()
    assert found in {PACKAGE_DIR / "kb", KB}
    assert sorted(p.name for p in found.glob("*.md")) == sorted(p.name for p in KB.glob("*.md"))
    assert Settings(_env_file=None).docs_path == found


async def test_a_sandbox_mode_chosen_as_none_is_reported_as_chosen_not_degraded(make_app: MakeApp) -> None:
    app = make_app(sandbox_mode="none")
    (check,) = [c for c in app.checks if c.name == "sandbox"]
    result = await check.probe()
    assert result.status == "ok"
    assert result.detail == "isolation: disabled"
