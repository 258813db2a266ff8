"""A local signing key, its JWKS file and a token minter: an identity provider without a network."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ISSUER = "https://idp.example.com/realms/desk"
AUDIENCE = "https://desk.example.com/mcp"


@dataclass
class LocalIdp:
    """An RSA and an EC key with a JWKS file on disk; `mint()` signs tokens like an authorization server."""

    jwks_path: Path
    rsa_key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))
    ec_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    def __post_init__(self) -> None:
        self.write_jwks()

    def write_jwks(self) -> None:
        """Publish both public keys (kid `rsa-1`, `ec-1`)."""
        rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.rsa_key.public_key()))
        ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.ec_key.public_key()))
        keys = [rsa_jwk | {"kid": "rsa-1", "use": "sig", "alg": "RS256"}, ec_jwk | {"kid": "ec-1", "use": "sig"}]
        self.jwks_path.write_text(json.dumps({"keys": keys}), encoding="utf-8")

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """Valid claims for alice, with overrides (None removes a claim)."""
        now = int(time.time())
        base: dict[str, Any] = {
            "iss": ISSUER,
            "sub": "alice",
            "aud": AUDIENCE,
            "exp": now + 300,
            "iat": now,
            "nbf": now,
            "scope": "mcp:tools notes:read",
            "mcp_desk_role": "agent",
            "azp": "desk-client",
        }
        merged = base | overrides
        return {k: v for k, v in merged.items() if v is not None}

    def mint(self, *, alg: str = "RS256", kid: str | None = "rsa-1", **overrides: Any) -> str:
        """A signed token with `claims(**overrides)`."""
        key = self.ec_key if alg.startswith("ES") else self.rsa_key
        headers = {"kid": kid} if kid is not None else {}
        return jwt.encode(self.claims(**overrides), key, algorithm=alg, headers=headers)
