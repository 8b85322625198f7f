"""`backend-iac`: the project's command line (plan, doctor, package, verify, migrate).

Each command imports its heavy modules (Pulumi, YAML, HTTP clients) only when it runs, so
`backend-iac --help` and the cheap commands stay fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import cast

# command -> "module:function"; the function takes the parsed arguments and returns the exit code.
COMMANDS: dict[str, str] = {
    "plan": "backend_iac.plan:run",
    "doctor": "backend_iac.doctor.command:run",
    "package": "backend_iac.package:run",
    "verify": "backend_iac.verify:run",
    "migrate": "service.db.migrations:run",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="backend-iac", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    plan = commands.add_parser(
        "plan", help="evaluate the stack offline under Pulumi's mocks: resources, policy, cost"
    )
    plan.add_argument("--stack", default="dev", help="stack name: reads Pulumi.<stack>.yaml (default: dev)")
    plan.add_argument("--format", choices=("text", "json"), default="text")
    plan.add_argument("--root", default=None, help="repository root (default: this checkout)")

    doctor = commands.add_parser("doctor", help="cross-check identity, pipeline, runtime and config, offline")
    doctor.add_argument("--root", default=None, help="repository root (default: this checkout)")
    doctor.add_argument("--stack", default="dev", help="stack name: reads Pulumi.<stack>.yaml (default: dev)")
    doctor.add_argument("--format", choices=("text", "json"), default="text")
    doctor.add_argument("explain", nargs="*", metavar="explain CODE", help="explain an Entra error code")

    package = commands.add_parser("package", help="build the deterministic zip App Service receives")
    package.add_argument("--output", default=None, help="zip path (default: dist/backend-iac-<commit>.zip)")
    package.add_argument("--root", default=None, help="repository root (default: this checkout)")
    package.add_argument("--ref", default="HEAD", help="the commit to package (default: HEAD)")

    verify = commands.add_parser(
        "verify",
        help="runtime gate: wait until the expected commit serves, is ready and (with a token) answers",
    )
    verify.add_argument("--url", required=True, help="the web app's base URL")
    verify.add_argument("--commit", required=True, help="the commit SHA that must be serving")
    verify.add_argument(
        "--timeout", type=float, default=600.0, help="seconds before giving up (default: 600)"
    )
    verify.add_argument("--app-name", default=None, help="web app name, for the log-stream hint")
    verify.add_argument("--resource-group", default=None, help="resource group, for the log-stream hint")
    token = verify.add_mutually_exclusive_group()
    token.add_argument(
        "--token-command",
        default=None,
        metavar="CMD",
        help="a command whose stdout is a bearer token (run without a shell, at most 60 s); after /readyz, "
        "GET /api/v1/items?limit=1 with it must answer 200 (401/403: exit 7)",
    )
    token.add_argument(
        "--token-env",
        default=None,
        metavar="VAR",
        help="the environment variable holding a bearer token, used as --token-command's output is",
    )

    commands.add_parser("migrate", help="apply the database schema migrations (DATABASE_URL)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module_name, function_name = COMMANDS[args.command].split(":")
    command = cast(
        Callable[[argparse.Namespace], int], getattr(importlib.import_module(module_name), function_name)
    )
    try:
        return command(args)
    except BrokenPipeError:
        # `backend-iac plan | head`: the reader left. Quietly, like any Unix tool, and without a traceback
        # when Python flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
