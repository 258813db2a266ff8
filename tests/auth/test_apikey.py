"""ApiKeyVerifier over the real key store: hashed keys become principals; the key itself is kept nowhere."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from mcp_desk.auth import principal_of
from mcp_desk.auth.apikey import ApiKeyVerifier
from mcp_desk.policy.keys import KeyStore, generate_key, key_line

pytestmark = pytest.mark.anyio


@pytest.fixture
def key_and_store(tmp_path: Path) -> tuple[str, KeyStore]:
    key = generate_key()
    path = tmp_path / "keys"
    path.write_text(key_line(key, principal="alice", role="viewer") + "\n", encoding="utf-8")
    return key, KeyStore.load(path)


async def test_a_stored_key_becomes_its_principal_and_role(key_and_store: tuple[str, KeyStore]) -> None:
    key, store = key_and_store
    with capture_logs() as logs:
        token = await ApiKeyVerifier(store).verify_token(key)
        refused = await ApiKeyVerifier(store).verify_token(key[:-1] + ("a" if key[-1] != "a" else "b"))
    assert token is not None
    assert principal_of(token) == ("alice", "viewer")
    assert key not in token.model_dump_json()
    assert refused is None
    assert key not in repr(logs)


async def test_malformed_keys_are_refused_without_a_lookup(key_and_store: tuple[str, KeyStore]) -> None:
    _, store = key_and_store
    verifier = ApiKeyVerifier(store)
    for presented in ("", "   ", "k" * 600, "kéy"):
        assert await verifier.verify_token(presented) is None
