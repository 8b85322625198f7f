"""A loopback TCP relay in front of one local port that can stop carrying bytes while every connection stays open.

This is how the tests freeze the database: the server is real and keeps running, but nothing the service
sends reaches it and nothing it answers comes back, exactly what a hung server or a silent network path
looks like from the service. New connections are accepted (as a kernel backlog would) and held unrelayed
until the thaw. Everything binds to 127.0.0.1; every thread is a daemon and stops with `close()`.

It can also reset connections mid-request (`resetting()`): requests still reach the server, but every
Nth answer is dropped and both ends get a TCP reset instead, so the service cannot tell whether the
statement it sent (a COMMIT, say) took effect: the case a retried write must survive.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

CHUNK = 65536
POLL_SECONDS = 0.2


class FreezableProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(POLL_SECONDS)
        self.port: int = self._listener.getsockname()[1]
        self._gate = threading.Condition()
        self._frozen = False
        self._closed = False
        self._sending = 0  # chunks between "allowed through" and "handed to the kernel"
        self._reset_every = 0  # 0: never; N: every Nth answer from upstream becomes a reset
        self._reset_containing = b""
        self._answers = 0
        self.resets = 0
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._spawn(self._accept_loop)

    def __enter__(self) -> FreezableProxy:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def url(self, database_url: str) -> str:
        """The same database URL, pointed at this proxy instead of the server."""
        parts = urlsplit(database_url)
        credentials, _, _ = parts.netloc.rpartition("@")
        netloc = f"{credentials}@127.0.0.1:{self.port}" if credentials else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """No byte crosses the proxy, in either direction, until the block ends; connections stay open."""
        with self._gate:
            self._frozen = True
            while self._sending:  # a chunk already on its way finishes before the freeze begins
                self._gate.wait()
        try:
            yield
        finally:
            with self._gate:
                self._frozen = False
                self._gate.notify_all()

    @contextmanager
    def resetting(self, every: int = 3, *, containing: bytes = b"") -> Iterator[None]:
        """Until the block ends, every `every`-th chunk the server answers (counting only chunks that
        contain `containing`, when given) is dropped and its connection reset (RST) on both sides; what
        the service sent had reached the server. PostgreSQL's answer to a COMMIT carries the command tag
        b"COMMIT\\0" (its protocol's CommandComplete message): resetting those loses the answer to a
        commit that happened."""
        if every < 1:
            msg = "every must be at least 1"
            raise ValueError(msg)
        with self._gate:
            self._reset_every, self._reset_containing, self._answers = every, containing, 0
        try:
            yield
        finally:
            with self._gate:
                self._reset_every = 0

    def _should_reset(self, data: bytes) -> bool:
        with self._gate:
            if not self._reset_every or self._reset_containing not in data:
                return False
            self._answers += 1
            if self._answers % self._reset_every:
                return False
            self.resets += 1
            return True

    def close(self) -> None:
        with self._gate:
            self._closed = True
            self._gate.notify_all()
            sockets = list(self._sockets)
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv
            sock.close()
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=2.0)

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _track(self, sock: socket.socket) -> bool:
        with self._gate:
            if self._closed:
                sock.close()
                return False
            self._sockets.append(sock)
            return True

    def _wait_for_thaw(self) -> bool:
        """Block while frozen; False once the proxy is closing. Called with the gate held."""
        while self._frozen and not self._closed:
            self._gate.wait()
        return not self._closed

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # listener closed
            if self._track(client):
                self._spawn(self._relay, client)

    def _relay(self, client: socket.socket) -> None:
        with self._gate:
            if not self._wait_for_thaw():
                return
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5.0)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        if self._track(upstream):
            self._spawn(self._pump, client, upstream)
            self._pump(upstream, client, answers=True)

    def _pump(self, source: socket.socket, target: socket.socket, *, answers: bool = False) -> None:
        while True:
            try:
                data = source.recv(CHUNK)
            except OSError:
                data = b""
            if data and answers and self._should_reset(data):
                _reset(source)
                _reset(target)
                return
            if not data or not self._forward(target, data):
                with suppress(OSError):
                    target.shutdown(socket.SHUT_WR)
                return

    def _forward(self, target: socket.socket, data: bytes) -> bool:
        with self._gate:
            if not self._wait_for_thaw():
                return False
            self._sending += 1
        try:
            target.sendall(data)
        except OSError:
            return False
        else:
            return True
        finally:
            with self._gate:
                self._sending -= 1
                self._gate.notify_all()


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset rather than a FIN (linger on, timeout zero). SHUT_RD first wakes the relay
    thread blocked reading this socket (it sends nothing), so the last reference goes and the RST leaves."""
    with suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RD)
    with suppress(OSError):
        sock.close()
