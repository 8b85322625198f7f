"""`python -m bench.http_protocol`: the CPU a keep-alive request costs in the HTTP protocol layer, uvicorn's
httptools protocol against service.worker's limited one, the same trivial app behind both.

No sockets and no wrk: the requests are fed to each protocol in process and timed with process CPU time,
so the ratio holds on a busy shared machine where wrk's requests per second do not. Prints the best of
several rounds for each and their ratio (issue 18: the limits must not cost throughput).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from service.worker import LimitedHttpToolsProtocol

# What wrk sends for the authenticated read: a request line, a bearer token, the usual headers.
REQUEST = (
    b"GET /api/v1/items/0b0c HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
    + b"a" * 900
    + b"\r\nAccept: */*\r\nUser-Agent: wrk\r\n\r\n"
)


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


class _Transport(asyncio.Transport):
    """Takes what the protocol writes and drops it."""

    def __init__(self) -> None:
        super().__init__()
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 40000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return True


async def _microseconds_per_request(protocol_class: type[HttpToolsProtocol], requests: int) -> float:
    config = Config(app=_app, http=protocol_class, lifespan="off", log_config=None, access_log=False)
    config.load()
    state = ServerState()
    protocol = protocol_class(config=config, server_state=state, app_state={})
    protocol.connection_made(_Transport())
    started = time.process_time()
    for _ in range(requests):
        protocol.data_received(REQUEST)
        # Let the request's task run to its end: yielding to the loop is the wait being measured.
        while state.tasks:  # noqa: ASYNC110 - a bare yield, not a wait for an event
            await asyncio.sleep(0)
    elapsed = time.process_time() - started
    protocol.connection_lost(None)
    return elapsed / requests * 1e6


async def _measure(rounds: int, requests: int) -> tuple[float, float]:
    stock: list[float] = []
    limited: list[float] = []
    for _ in range(rounds):
        stock.append(await _microseconds_per_request(HttpToolsProtocol, requests))
        limited.append(await _microseconds_per_request(LimitedHttpToolsProtocol, requests))
    return min(stock), min(limited)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    stock, limited = asyncio.run(_measure(args.rounds, args.requests))
    print(
        f"protocol CPU per keep-alive request (best of {args.rounds} x {args.requests}): "
        f"uvicorn httptools {stock:.1f} us, service.worker {limited:.1f} us, ratio {limited / stock:.3f}"
    )


if __name__ == "__main__":
    main()
