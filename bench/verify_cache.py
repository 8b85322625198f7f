"""The token verifier alone: the cost of a verified-token cache hit (what every request after a token's
first pays) and of a full verification. `uv run python -m bench.verify_cache`; no network, no service."""

from __future__ import annotations

import asyncio
import json
import time

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from service.auth import StaticKeys, TokenVerifier

ISSUER = "https://issuer.invalid"
AUDIENCE = "api://bench"


async def measure(hits: int = 200_000, misses: int = 200) -> tuple[float, float]:
    """Seconds per cache hit (best of five runs) and per full verification."""
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwks = {"keys": [{**jwk, "kid": "k1", "alg": "ES256", "use": "sig"}]}
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "s", "scp": "items.read", "iat": now, "exp": now + 3600}
    token = jwt.encode(claims, key, algorithm="ES256", headers={"kid": "k1"})
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, keys=StaticKeys(jwks))
    await verifier.verify(token)
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(hits):
            await verifier.verify(token)
        best = min(best, (time.perf_counter() - started) / hits)
    started = time.perf_counter()
    for _ in range(misses):
        await TokenVerifier(issuer=ISSUER, audience=AUDIENCE, keys=StaticKeys(jwks)).verify(token)
    return best, (time.perf_counter() - started) / misses


def main() -> None:
    hit, miss = asyncio.run(measure())
    print(f"verify: cache hit {hit * 1e6:.2f} us, full verification (ES256) {miss * 1e6:.0f} us")


if __name__ == "__main__":
    main()
