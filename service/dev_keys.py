"""The local development signing key, and `python -m service.dev_keys mint` (what `make token` runs).

Trusted only when APP_ENV=development and no real issuer is configured; settings refuse the
development issuer in production, so these keys can never open a deployed service.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from service.config import DEVELOPMENT_AUDIENCE, DEVELOPMENT_ISSUER

DEFAULT_KEY_PATH: Final = Path("var") / "dev-signing-key.pem"


def _load_or_create(path: Path) -> ec.EllipticCurvePrivateKey:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first: use theirs
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        msg = f"{path} does not hold an EC private key"
        raise TypeError(msg)
    return loaded


def _public_jwk(key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "dev-" + jwk["x"][:16], "alg": "ES256", "use": "sig"})
    return jwk


def development_jwks(path: Path = DEFAULT_KEY_PATH) -> dict[str, Any]:
    """The public key set the service trusts in development (creates the key on first use)."""
    return {"keys": [_public_jwk(_load_or_create(path))]}


def mint(
    *,
    subject: str = "developer",
    scopes: str = "items.read items.write",
    ttl_seconds: int = 3600,
    path: Path = DEFAULT_KEY_PATH,
) -> str:
    """A development access token for the local service."""
    key = _load_or_create(path)
    now = int(time.time())
    claims = {
        "iss": DEVELOPMENT_ISSUER,
        "aud": DEVELOPMENT_AUDIENCE,
        "sub": subject,
        "scp": scopes,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_seconds,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": _public_jwk(key)["kid"]})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service.dev_keys", description=__doc__)
    parser.add_argument("action", choices=["mint"])
    parser.add_argument("--subject", default="developer")
    parser.add_argument("--scopes", default="items.read items.write")
    parser.add_argument("--ttl", type=int, default=3600, help="seconds until the token expires")
    args = parser.parse_args(argv)
    print(mint(subject=args.subject, scopes=args.scopes, ttl_seconds=args.ttl))
    return 0


if __name__ == "__main__":
    sys.exit(main())
