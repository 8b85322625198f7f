"""Where one request's time goes, layer by layer: the service's ASGI app driven in process (no socket, no
server), its lifespan run against a real database and the local OIDC issuer, with cProfile on.

    uv run python -m bench.profile_request --database sqlite --requests 3000
    uv run python -m bench.profile_request --database postgres --path /healthz
    uv run python -m bench.profile_request --database postgres --telemetry --top 40

Prints the time per request without the profiler (the real figure), then, from the profiled run, each
layer's cumulative time per request and its share of the profiled total. cProfile inflates Python-heavy
code more than C code, so read the shares, not the absolute profiled microseconds. Layers overlap where
one calls another (middleware wraps everything inside it); the table says what each row includes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import os
import pstats
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.support.ingestion_sink import IngestionSink
from tests.support.issuer import AUDIENCE, LocalIssuer
from tests.support.postgres import PostgresServer

# (label, what it includes, "module:qualname" of the function whose cumulative time it is). Rows nest:
# a row includes the rows indented under it.
LAYERS: tuple[tuple[str, str, str], ...] = (
    ("whole app", "everything in process", "starlette.applications:Starlette.__call__"),
    ("request id + access line", "all inside it", "service.middleware:RequestContextMiddleware.__call__"),
    ("  the access line", "one JSON line to stdout", "service.middleware:_write_access_line"),
    ("  the request id", "header scan or a new id", "service.middleware:_request_id_from"),
    ("  security headers", "all inside it", "service.middleware:SecurityHeadersMiddleware.__call__"),
    ("    request limits", "all inside it", "service.middleware:RequestLimitsMiddleware.__call__"),
    (
        "      Starlette exception middleware",
        "all inside it",
        "starlette.middleware.exceptions:ExceptionMiddleware.__call__",
    ),
    ("        routing (Router.app)", "matching, then the route", "starlette.routing:Router.app"),
    ("          dependencies", "params, caller, store", "fastapi.dependencies.utils:solve_dependencies"),
    ("            path/query/header validation", "", "fastapi.dependencies.utils:request_params_to_args"),
    ("            caller (token, scope)", "", "service.deps:_access_with.<locals>.access"),
    ("              verified-token cache lookup", "sha256 + TLRU get", "service.auth:TokenVerifier.verify"),
    ("          endpoint (get_item)", "store call, ItemPublic.of", "service.routes.items:get_item"),
    ("            store call", "backend included", "service.db.store:Store.get_item"),
    (
        "              PostgreSQL: per-statement task",
        "task + wait_for",
        "service.db.postgres:PostgresStore._within",
    ),
    ("              PostgreSQL: pool checkout", "", "psycopg_pool.pool_async:AsyncConnectionPool.connection"),
    ("          serialisation", "to JSON bytes", "fastapi.routing:serialize_response"),
    ("          response send", "", "starlette.responses:Response.__call__"),
)


def _code_key(target: str) -> tuple[str, int, str] | None:
    """cProfile's (file, first line, name) for "module:qualname", or None when it does not exist here."""
    import importlib

    module_name, _, qualname = target.partition(":")
    try:
        value: Any = importlib.import_module(module_name)
    except ImportError:
        return None
    parts = qualname.split(".")
    index = 0
    while index < len(parts):
        part = parts[index]
        if part == "<locals>":  # a closure: found by name in the enclosing function's code constants
            code = value.__code__
            inner = parts[index + 1]
            for const in code.co_consts:
                if getattr(const, "co_name", None) == inner:
                    return const.co_filename, const.co_firstlineno, const.co_name
            return None
        value = getattr(value, part, None)
        if value is None:
            return None
        index += 1
    code = getattr(value, "__code__", None)
    return (code.co_filename, code.co_firstlineno, code.co_name) if code is not None else None


def _scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def _drive(app: Any, path: str, headers: list[tuple[bytes, bytes]], count: int) -> list[int]:
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    for _ in range(count):
        await app(_scope(path, list(headers)), receive, send)
    return statuses


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """The access lines go to a real file (as they go to a pipe under gunicorn), not the terminal."""
    with open(os.devnull, "w", encoding="utf-8") as sink:
        previous, sys.stdout = sys.stdout, sink
        try:
            yield
        finally:
            sys.stdout = previous


async def _measure(args: argparse.Namespace, database_url: str, issuer: LocalIssuer, home: Path) -> None:
    from service.config import load_settings
    from service.main import create_app

    settings = load_settings(
        app_env="production",
        database_url=database_url,
        auth_issuer=issuer.url,
        auth_audience=AUDIENCE,
        build_info_path=home / "missing-build-info.json",
    )
    if args.telemetry:  # as gunicorn's post_fork does, before the app exists: create_app instruments it
        from service import telemetry

        telemetry.start(args.telemetry)
    app = create_app(settings)
    token = issuer.mint(ttl=3600)
    headers = [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {token}".encode())]
    async with app.router.lifespan_context(app):
        store = app.state.store
        verified = await app.state.verifier.verify(token)
        item = await store.create_item(owner=verified.subject, name="bench", description=None)
        path = args.path or f"/api/v1/items/{item.id}"
        with _quiet_stdout():
            await _drive(app, path, headers, 200)  # warm: JWKS fetched, token cached, pool filled
            timings = []
            for _ in range(args.repeat):  # the fastest of several: the machine's noise only adds time
                started = time.perf_counter()
                statuses = await _drive(app, path, headers, args.requests)
                timings.append(time.perf_counter() - started)
            elapsed = min(timings)
            profiler = cProfile.Profile()
            profiler.enable()
            await _drive(app, path, headers, args.requests)
            profiler.disable()
    if set(statuses) != {200}:
        print(f"unexpected statuses: {sorted(set(statuses))}", file=sys.stderr)
    print(f"{args.database} GET {path}")
    print(
        f"in process, no profiler: {elapsed / args.requests * 1e6:8.1f} us per request "
        f"(fastest of {args.repeat} runs of {args.requests})"
    )
    _print_layers(profiler, args.requests)
    if args.top:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(args.top)


def _print_layers(profiler: cProfile.Profile, count: int) -> None:
    stats = pstats.Stats(profiler, stream=io.StringIO())
    cumulative = {key: row[3] for key, row in stats.stats.items()}  # type: ignore[attr-defined]
    rows = [
        (label, what, cumulative.get(key)) for label, what, target in LAYERS if (key := _code_key(target))
    ]
    total = next((seconds for _, _, seconds in rows if seconds), 1e-9)
    print(f"{'layer (profiled, cumulative)':<48} {'us/request':>10} {'share':>7}  includes")
    for label, what, seconds in rows:
        if seconds:
            print(f"{label:<48} {seconds / count * 1e6:10.1f} {seconds / total:7.1%}  {what}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=5, help="unprofiled runs; the fastest is printed")
    parser.add_argument("--top", type=int, default=0, help="also print the N functions with most own time")
    parser.add_argument("--path", default=None, help="default: an item the run creates (authenticated)")
    parser.add_argument(
        "--telemetry",
        action="store_true",
        help="with Application Insights on, exporting to a loopback ingestion sink (as make bench does)",
    )
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="backend-iac-profile-"))
    issuer = LocalIssuer().start()
    postgres: PostgresServer | None = None
    try:
        if args.database == "postgres":
            postgres = PostgresServer()
            postgres.init()
            postgres.start()
            database_url = postgres.create_database("profile")
        else:
            database_url = f"sqlite:///{home / 'items.sqlite3'}"
        with contextlib.ExitStack() as stack:
            if args.telemetry:
                args.telemetry = stack.enter_context(IngestionSink()).connection_string
            asyncio.run(_measure(args, database_url, issuer, home))
    finally:
        if postgres is not None:
            postgres.destroy()
        issuer.stop()
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
