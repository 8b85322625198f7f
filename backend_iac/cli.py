"""`backend-iac`: the project's command line (plan, doctor, package, verify, migrate).

This module owns the command line: one `add_<command>_parser` function per command declares its
flags, and one small `<command>` function turns the parsed flags into a typed call of the tool's
core. No parsed `argparse.Namespace` goes further than this module.

Each command imports its heavy modules (Pulumi, YAML, HTTP clients) only when it runs, so
`backend-iac --help` and the cheap commands stay fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final, Literal

DESCRIPTION: Final = """`backend-iac`: the project's command line (plan, doctor, package, verify, migrate).

Each command imports its heavy modules (Pulumi, YAML, HTTP clients) only when it runs, so
`backend-iac --help` and the cheap commands stay fast.
"""

# The checkout this package runs from (its parent holds Pulumi.yaml), when it runs from one.
_CHECKOUT: Final = Path(__file__).resolve().parents[1]

OutputFormat = Literal["text", "json"]


def resolve_root(value: str | None) -> Path:
    """The repository root every command reads: `--root` when given, else this checkout when the
    package runs from one, else the current directory. One meaning for every command."""
    if value:
        return Path(value).resolve()
    return _CHECKOUT if (_CHECKOUT / "Pulumi.yaml").is_file() else Path.cwd().resolve()


def _add_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--root",
        default=None,
        help="the repository checkout to read (default: this checkout, else the current directory)",
    )


def _add_stack(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", default="dev", help="stack name: reads Pulumi.<stack>.yaml (default: dev)")


def _add_format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("text", "json"), default="text")


def _output_format(value: str) -> OutputFormat:
    return "json" if value == "json" else "text"


# plan ------------------------------------------------------------------------------------------------


def add_plan_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "plan", help="evaluate the stack offline under Pulumi's mocks: resources, policy, cost"
    )
    _add_stack(parser)
    _add_format(parser)
    _add_root(parser)


def plan(args: argparse.Namespace) -> int:
    from backend_iac.plan import print_plan

    return print_plan(
        root=resolve_root(args.root), stack=str(args.stack), output_format=_output_format(args.format)
    )


# doctor ----------------------------------------------------------------------------------------------


def add_doctor_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("doctor", help="cross-check identity, pipeline, runtime and config, offline")
    _add_root(parser)
    _add_stack(parser)
    _add_format(parser)
    parser.add_argument("explain", nargs="*", metavar="explain CODE", help="explain an Entra error code")


def doctor(args: argparse.Namespace) -> int:
    from backend_iac.doctor.command import explain_code, run_doctor

    root = resolve_root(args.root)
    stack = str(args.stack)
    words = [str(word) for word in args.explain or ()]
    if words:
        if words[0] != "explain" or len(words) != 2:
            print("backend-iac doctor: usage: backend-iac doctor [options] explain CODE", file=sys.stderr)
            return 2
        return explain_code(words[1], root=root, stack=stack, out=sys.stdout, err=sys.stderr)
    return run_doctor(
        root=root, stack=stack, output_format=_output_format(args.format), out=sys.stdout, err=sys.stderr
    )


# package ---------------------------------------------------------------------------------------------


def add_package_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("package", help="build the deterministic zip App Service receives")
    parser.add_argument("--output", default=None, help="zip path (default: dist/backend-iac-<commit>.zip)")
    _add_root(parser)
    parser.add_argument("--ref", default="HEAD", help="the commit to package (default: HEAD)")


def package(args: argparse.Namespace) -> int:
    from backend_iac.package import run_package

    return run_package(
        root=resolve_root(args.root),
        output=Path(args.output) if args.output else None,
        ref=str(args.ref),
    )


# verify ----------------------------------------------------------------------------------------------


def add_verify_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "verify",
        help="runtime gate: wait until the expected commit serves, is ready and (with a token) answers",
    )
    parser.add_argument("--url", required=True, help="the web app's base URL")
    parser.add_argument("--commit", required=True, help="the commit SHA that must be serving")
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds before giving up (default: 600)"
    )
    parser.add_argument("--app-name", default=None, help="web app name, for the log-stream hint")
    parser.add_argument("--resource-group", default=None, help="resource group, for the log-stream hint")
    token = parser.add_mutually_exclusive_group()
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


def verify(args: argparse.Namespace) -> int:
    from backend_iac.verify import run_verify

    return run_verify(
        url=str(args.url),
        commit=str(args.commit),
        timeout=float(args.timeout),
        app_name=args.app_name,
        resource_group=args.resource_group,
        token_command=args.token_command,
        token_env=args.token_env,
    )


# migrate ---------------------------------------------------------------------------------------------


def add_migrate_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    commands.add_parser("migrate", help="apply the database schema migrations (DATABASE_URL)")


def migrate(args: argparse.Namespace) -> int:
    from service.db.migrations import run_migrations

    del args  # the database comes from the service's settings (DATABASE_URL), not from flags
    return run_migrations()


# The command line --------------------------------------------------------------------------------------

Command = Callable[[argparse.Namespace], int]
AddParser = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

# command -> (declares its flags, runs it); in the order `--help` lists them.
COMMANDS: Final[dict[str, tuple[AddParser, Command]]] = {
    "plan": (add_plan_parser, plan),
    "doctor": (add_doctor_parser, doctor),
    "package": (add_package_parser, package),
    "verify": (add_verify_parser, verify),
    "migrate": (add_migrate_parser, migrate),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="backend-iac", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_parser, _ in COMMANDS.values():
        add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _, command = COMMANDS[args.command]
    try:
        return command(args)
    except BrokenPipeError:
        # `backend-iac plan | head`: the reader left. Quietly, like any Unix tool, and without a traceback
        # when Python flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
