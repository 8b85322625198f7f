"""A loopback Application Insights ingestion endpoint: what the Azure Monitor exporter posts to, captured.

The exporter (azure-monitor-opentelemetry-exporter 1.0.0b58, `_generated/exporter/_client.py` and
`_operations/_operations.py`) POSTs a JSON array of envelopes to `{IngestionEndpoint}/v2.1/track` and
reads back a TrackResponse (`itemsReceived`, `itemsAccepted`, `errors`). It sends the body uncompressed;
a gzip body (Content-Encoding: gzip, as other Application Insights SDKs send) is accepted too.
Every captured envelope is kept as parsed JSON, up to MAX_ENVELOPES; bodies over MAX_BODY_BYTES are refused.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_ENVELOPES = 20_000
TRACK_PATH = "/v2.1/track"

Envelope = dict[str, Any]


class IngestionSink:
    """Start with `start()` (or as a context manager); point a connection string at `connection_string`."""

    def __init__(self) -> None:
        self.instrumentation_key = str(uuid.uuid4())
        self._envelopes: list[Envelope] = []
        self._raw_bodies: list[bytes] = []
        self._lock = threading.Lock()
        self._condition = threading.Condition(self._lock)
        self.posts = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def connection_string(self) -> str:
        return f"InstrumentationKey={self.instrumentation_key};IngestionEndpoint={self.url}/;LiveEndpoint={self.url}/"

    def start(self, port: int = 0) -> IngestionSink:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if self.path.split("?", 1)[0] != TRACK_PATH:
                    self._answer(404, {"error": f"not an ingestion path: {self.path}"})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY_BYTES:
                    self._answer(413, {"error": "too large"})
                    return
                body = self.rfile.read(length)
                if self.headers.get("Content-Encoding", "").lower() == "gzip":
                    body = gzip.decompress(body)
                try:
                    parsed = json.loads(body)
                except json.JSONDecodeError:
                    # Some SDKs send newline-delimited envelopes instead of one array.
                    parsed = [json.loads(line) for line in body.splitlines() if line.strip()]
                envelopes = parsed if isinstance(parsed, list) else [parsed]
                sink._capture(body, envelopes)
                self._answer(
                    200, {"itemsReceived": len(envelopes), "itemsAccepted": len(envelopes), "errors": []}
                )

            def _answer(self, status: int, document: dict[str, Any]) -> None:
                payload = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="ingestion-sink", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> IngestionSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _capture(self, body: bytes, envelopes: list[Envelope]) -> None:
        with self._condition:
            self.posts += 1
            if len(self._raw_bodies) < 1000:
                self._raw_bodies.append(body)
            room = MAX_ENVELOPES - len(self._envelopes)
            self._envelopes.extend(envelopes[: max(room, 0)])
            self._condition.notify_all()

    def envelopes(self, base_type: str | None = None) -> list[Envelope]:
        """What arrived so far, optionally only one kind (RequestData, RemoteDependencyData, MessageData, ...)."""
        with self._lock:
            found = list(self._envelopes)
        if base_type is None:
            return found
        return [e for e in found if (e.get("data") or {}).get("baseType") == base_type]

    def raw_bodies(self) -> list[bytes]:
        with self._lock:
            return list(self._raw_bodies)

    def wait_for(self, predicate: Callable[[list[Envelope]], bool], timeout: float = 20.0) -> list[Envelope]:
        """Wait (bounded) until `predicate(envelopes)` holds; return the envelopes; raise on timeout."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while not predicate(list(self._envelopes)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    kinds = sorted({str((e.get("data") or {}).get("baseType")) for e in self._envelopes})
                    msg = f"ingestion sink: condition not met within {timeout}s ({len(self._envelopes)} envelopes: {kinds})"
                    raise TimeoutError(msg)
                self._condition.wait(min(remaining, 0.5))
            return list(self._envelopes)


def base_data(envelope: Envelope) -> dict[str, Any]:
    """The telemetry item itself (name, url, responseCode, ...) inside an envelope."""
    return dict((envelope.get("data") or {}).get("baseData") or {})
