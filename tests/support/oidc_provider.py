"""A real OpenID provider, panva's `oidc-provider` (npm), started on 127.0.0.1 for the interoperability tests.

Not ours and not a stand-in: an independent, certified OpenID Connect / OAuth 2.0 server, configured
(tests/support/oidc_provider/server.mjs) for the client credentials grant with resource indicators
(RFC 8707), which makes it issue RFC 9068 JWT access tokens: `typ: at+jwt`, `aud` the resource, `sub` and
`client_id` the client, the granted scopes space-separated in `scope`. `make test` installs it from the
committed package-lock.json (`npm ci`, see the Makefile's `oidc-provider` target).

Bounded: start-up waits at most START_TIMEOUT_SECONDS for the provider's "listening" line, every HTTP
call has a timeout, and the provider exits when its stdin closes, so it never outlives the test process.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

PROVIDER_DIR = Path(__file__).resolve().parent / "oidc_provider"
START_TIMEOUT_SECONDS = 30.0
HTTP_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Client:
    """A confidential client registered with the provider: its id, secret, allowed scopes, signing alg."""

    client_id: str
    client_secret: str
    scope: str
    alg: str = "RS256"


class ProviderError(Exception):
    """The provider could not be started, or refused a token request (the message says why)."""


@dataclass
class OidcProvider:
    clients: Sequence[Client]
    resource: str  # the API's resource indicator, which becomes the tokens' `aud`
    issuer: str = ""
    _process: subprocess.Popen[str] | None = None
    _stderr: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> OidcProvider:
        node = shutil.which("node")
        if node is None:
            msg = "node is not installed: `make oidc-provider` installs Node.js and the provider"
            raise ProviderError(msg)
        if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
            msg = f"oidc-provider is not installed in {PROVIDER_DIR}: run `make oidc-provider` (npm ci)"
            raise ProviderError(msg)
        # Closed in __exit__ (it must outlive this method: stderr() reads it when start-up fails).
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        self._process = subprocess.Popen(
            [node, "server.mjs"],
            cwd=PROVIDER_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env={"PATH": os.environ.get("PATH", ""), "NODE_ENV": "test"},
        )
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        settings = {
            "resource": self.resource,
            "clients": [
                {"client_id": c.client_id, "client_secret": c.client_secret, "scope": c.scope, "alg": c.alg}
                for c in self.clients
            ],
        }
        self._process.stdin.write(json.dumps(settings) + "\n")
        self._process.stdin.flush()
        line = self._read_line(self._process.stdout, START_TIMEOUT_SECONDS)
        try:
            self.issuer = str(json.loads(line)["issuer"])
        except (ValueError, KeyError, TypeError):
            self.stop()
            msg = f"oidc-provider did not start (said {line!r}); its stderr:\n{self.stderr()}"
            raise ProviderError(msg) from None
        if not self.issuer.startswith("http://127.0.0.1:"):
            self.stop()
            msg = f"oidc-provider listens somewhere other than loopback: {self.issuer}"
            raise ProviderError(msg)
        return self

    def _read_line(self, stream: IO[str], timeout: float) -> str:
        """One line from the provider's stdout, waiting at most `timeout` seconds."""
        with selectors.DefaultSelector() as selector:
            selector.register(stream, selectors.EVENT_READ)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if selector.select(timeout=0.2):
                    return stream.readline(64 * 1024)
                if self._process is not None and self._process.poll() is not None:
                    break
        self.stop()
        msg = f"oidc-provider gave no listening line within {timeout:.0f} s; its stderr:\n{self.stderr()}"
        raise ProviderError(msg)

    def stderr(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read(8000).decode("utf-8", "replace")

    def discovery(self) -> dict[str, Any]:
        response = httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=HTTP_TIMEOUT_SECONDS)
        response.raise_for_status()
        document: dict[str, Any] = response.json()
        return document

    def token_response(self, client: Client, scope: str) -> httpx.Response:
        """The raw token endpoint response for a client credentials request (RFC 6749 section 4.4)."""
        return httpx.post(
            f"{self.issuer}/token",
            data={"grant_type": "client_credentials", "scope": scope, "resource": self.resource},
            auth=(client.client_id, client.client_secret),
            timeout=HTTP_TIMEOUT_SECONDS,
        )

    def token(self, client: Client, scope: str) -> str:
        """An access token for `client` with `scope`, by client credentials."""
        response = self.token_response(client, scope)
        if response.status_code != 200:
            msg = (
                f"token request for {client.client_id} refused: {response.status_code} {response.text[:500]}"
            )
            raise ProviderError(msg)
        return str(response.json()["access_token"])

    def stop(self) -> None:
        if self._process is None:
            return
        if self._process.stdin is not None and not self._process.stdin.closed:
            self._process.stdin.close()  # the provider exits when its stdin ends
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(10)
        if self._process.stdout is not None:
            self._process.stdout.close()

    def __enter__(self) -> OidcProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._stderr is not None:
            self._stderr.close()
