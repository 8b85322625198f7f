"""`backend-iac`: the project's command line (plan, doctor, package, verify, serving, rollback, migrate,
backup, restore).

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

from backend_iac.arguments import commit_sha, http_url

DESCRIPTION: Final = """`backend-iac`: the project's command line (plan, doctor, package, verify, serving,
rollback, migrate, backup, restore).

Each command imports its heavy modules (Pulumi, YAML, HTTP clients) only when it runs, so
`backend-iac --help` and the cheap commands stay fast.
"""

# The checkout this package runs from (its parent holds Pulumi.yaml), when it runs from one.
_CHECKOUT: Final = Path(__file__).resolve().parents[1]

OutputFormat = Literal["text", "json"]


# What `backend-iac COMMAND --help` says beyond the flags: what the command is for, its exit codes and an
# example to paste. Every command has an entry (a test checks it).
_GUIDES: Final[dict[str, tuple[str, str, str]]] = {
    "plan": (
        "Evaluate the Pulumi program under Pulumi's mocks, with no cloud credentials: every resource it\n"
        "declares (secrets shown as [secret]), the policy pack's verdict (policy/config.json) and a\n"
        "monthly cost estimate.",
        "0 the stack passes the policy pack; 1 a policy is violated; 2 the config, the stack file or the\n"
        "policy config is unreadable or invalid (the message names the key)",
        "./backend-iac plan --stack dev\n  ./backend-iac plan --stack dev --format json | jq .monthly_cost_usd",
    ),
    "doctor": (
        "Cross-check, offline, that the identities, the workflows, the runtime settings and the stack config\n"
        "agree, layer by layer, each finding with its file, line and fix; `explain CODE` says what an Entra\n"
        "AADSTS error means on this stack.",
        "0 no error (warnings allowed); 1 at least one error; 2 an input could not be read",
        "./backend-iac doctor\n  ./backend-iac doctor explain AADSTS700213",
    ),
    "package": (
        "Build the zip App Service receives, deterministically from a commit: the service, its hashed\n"
        "requirements.txt from uv.lock and build_info.json (the same commit gives the same bytes).",
        "0 built (the path is printed last); 1 the commit, the repository or the lock file cannot be packaged\n(the message says why)",
        "./backend-iac package\n  ./backend-iac package --ref HEAD~1 --output /tmp/previous.zip",
    ),
    "verify": (
        "The runtime gate: probe /healthz, /version and /readyz until the expected commit serves and is\n"
        "ready, or the timeout passes; the exit code names the layer that failed.",
        "0 verified; 2 usage (a URL without http(s)://, a commit that is not hex of 7+ characters, no token\n"
        "from --token-command/--token-env); 3 not reachable; 4 start-up error; 5 old commit still serving;\n"
        "6 readiness failing; 7 authenticated call refused (401/403 with the token)",
        "./backend-iac verify --url https://<app>.azurewebsites.net --commit $(git rev-parse HEAD) \\\n"
        "      --token-command 'az account get-access-token --resource api://<client-id> --query accessToken -o tsv'\n"
        "  ./backend-iac verify --url http://127.0.0.1:8000 --commit $(git rev-parse --short=12 HEAD) --timeout 30",
    ),
    "serving": (
        "Before a deploy: ask the live site which commit it serves and whether it is healthy and ready;\n"
        "prints JSON {url, commit, ready, diagnosis} and, in GitHub Actions, writes commit=<sha> to\n"
        "$GITHUB_OUTPUT for the rollback to use.",
        "0 a ready commit serves; 2 usage; 3 not reachable; 4 start-up error; 6 readiness failing\n"
        "(nothing healthy is serving: a rollback would have nothing verified to return to)",
        "./backend-iac serving --url https://<app>.azurewebsites.net",
    ),
    "rollback": (
        "After a failed runtime gate: rebuild the artifact of the commit that served before (package --ref),\n"
        "zip-deploy it and verify it; the summary names the new commit's diagnosis, the rollback's outcome\n"
        "and what was not rolled back (the infrastructure).",
        "0 the previous commit serves again, verified; 1 nothing to roll back to, or the rollback failed\n"
        "(both diagnoses printed); 2 usage",
        "./backend-iac rollback --url https://<app>.azurewebsites.net --commit $NEW --previous $OLD \\\n"
        "      --app-name <app> --resource-group <rg>",
    ),
    "migrate": (
        "Apply the database schema migrations to DATABASE_URL (the embedded SQLite file when unset), as the\n"
        "service's start-up does; safe to run again.",
        "0 applied or nothing pending; 2 the settings are invalid or the database cannot be reached",
        "DATABASE_URL=postgresql://user@host/db ./backend-iac migrate",
    ),
    "backup": (
        "Copy the embedded SQLite database (DATABASE_URL, else the default file) to FILE while the service\n"
        "keeps writing, with SQLite's backup API: one consistent snapshot, checked (integrity, schema)\n"
        "before success. Never overwrites FILE. PostgreSQL backs itself up (docs/service.md).",
        "0 backed up and checked; 2 the settings are invalid, the database is PostgreSQL or locked, FILE\n"
        "exists, or the copy failed its checks (the message says which)",
        "./backend-iac backup /home/backups/backend-iac-$(date -u +%Y%m%dT%H%M%SZ).sqlite3",
    ),
    "restore": (
        "Check a backup FILE (integrity, schema version) and copy it over the embedded SQLite database.\n"
        "Stop the service first: the copy needs the database's write lock.",
        "0 restored and checked; 2 the settings are invalid, the database is PostgreSQL or locked, or FILE\n"
        "is missing or not a backend-iac database at the current schema",
        "./backend-iac restore /home/backups/backend-iac-20261129T120000Z.sqlite3",
    ),
}


def _command_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str
) -> argparse.ArgumentParser:
    """A subcommand whose --help carries a description, its exit codes and an example."""
    description, exit_codes, example = _GUIDES[name]
    return commands.add_parser(
        name,
        help=summary,
        description=description,
        epilog=f"exit codes:\n  {exit_codes.replace(chr(10), chr(10) + '  ')}\n\nexample:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _version() -> str:
    from importlib import metadata

    try:
        return f"backend-iac {metadata.version('backend-iac')}"
    except metadata.PackageNotFoundError:
        return "backend-iac (not installed)"


class _VersionAction(argparse.Action):
    """argparse's `version` action, but the version is looked up (importlib.metadata scans sys.path)
    only when --version is given, not on every command."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS) -> None:
        super().__init__(
            option_strings, dest, default=argparse.SUPPRESS, nargs=0, help="show the version and exit"
        )

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        sys.stdout.write(f"{_version()}\n")
        parser.exit()


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
    parser = _command_parser(
        commands, "plan", "evaluate the stack offline under Pulumi's mocks: resources, policy, cost"
    )
    _add_stack(parser)
    _add_format(parser)
    _add_root(parser)
    parser.add_argument(
        "--base",
        default=None,
        metavar="REF",
        help="print what the working tree changes relative to REF (a commit, branch or tag), with the cost delta",
    )


def plan(args: argparse.Namespace) -> int:
    from backend_iac.plan import print_diff, print_plan

    root, stack, output_format = resolve_root(args.root), str(args.stack), _output_format(args.format)
    if args.base is not None:
        return print_diff(root=root, stack=stack, base=str(args.base), output_format=output_format)
    return print_plan(root=root, stack=stack, output_format=output_format)


# doctor ----------------------------------------------------------------------------------------------


def add_doctor_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = _command_parser(
        commands, "doctor", "cross-check identity, pipeline, runtime and config, offline"
    )
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
    parser = _command_parser(commands, "package", "build the deterministic zip App Service receives")
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
    parser = _command_parser(
        commands,
        "verify",
        "runtime gate: wait until the expected commit serves, is ready and (with a token) answers",
    )
    parser.add_argument("--url", required=True, type=http_url, help="the web app's base URL (http or https)")
    parser.add_argument(
        "--commit",
        required=True,
        type=commit_sha,
        help="the commit that must be serving: its hex SHA, or a prefix of at least 7 characters",
    )
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


# serving and rollback --------------------------------------------------------------------------------


def add_serving_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = _command_parser(
        commands,
        "serving",
        "which commit the live site serves, if healthy and ready (JSON); run before a deploy",
    )
    parser.add_argument("--url", required=True, type=http_url, help="the web app's base URL (http or https)")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to look for a ready commit (default: 60)"
    )


def serving(args: argparse.Namespace) -> int:
    from backend_iac.rollback import run_serving

    return run_serving(url=str(args.url), timeout=float(args.timeout))


def add_rollback_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = _command_parser(
        commands, "rollback", "after a failed gate: redeploy and verify the commit that was serving before"
    )
    parser.add_argument("--url", required=True, type=http_url, help="the web app's base URL (http or https)")
    parser.add_argument(
        "--commit", required=True, type=commit_sha, help="the new commit, which failed the gate"
    )
    parser.add_argument(
        "--previous",
        default="",
        help="the commit `backend-iac serving` recorded before the deploy ('' if none)",
    )
    parser.add_argument("--app-name", required=True, help="web app name (stack output web_app_name)")
    parser.add_argument(
        "--resource-group", required=True, help="resource group (stack output resource_group)"
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds to verify the rollback (default: 600)"
    )
    _add_root(parser)


def rollback(args: argparse.Namespace) -> int:
    from backend_iac.rollback import run_rollback

    return run_rollback(
        root=resolve_root(args.root),
        url=str(args.url),
        new_commit=str(args.commit),
        previous=str(args.previous) or None,
        app_name=str(args.app_name),
        resource_group=str(args.resource_group),
        timeout=float(args.timeout),
    )


# migrate ---------------------------------------------------------------------------------------------


def add_migrate_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _command_parser(commands, "migrate", "apply the database schema migrations (DATABASE_URL)")


def migrate(args: argparse.Namespace) -> int:
    from service.db.migrations import run_migrations

    del args  # the database comes from the service's settings (DATABASE_URL), not from flags
    return run_migrations()


# backup / restore --------------------------------------------------------------------------------------


def add_backup_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = _command_parser(commands, "backup", "copy the embedded SQLite database to FILE, online")
    parser.add_argument("file", type=Path, metavar="FILE", help="the backup to write (must not exist)")


def backup(args: argparse.Namespace) -> int:
    from service.db.backup import run_backup_command

    return run_backup_command("backup", args.file)


def add_restore_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = _command_parser(commands, "restore", "restore the embedded SQLite database from FILE")
    parser.add_argument("file", type=Path, metavar="FILE", help="the backup to restore")


def restore(args: argparse.Namespace) -> int:
    from service.db.backup import run_backup_command

    return run_backup_command("restore", args.file)


# The command line --------------------------------------------------------------------------------------

Command = Callable[[argparse.Namespace], int]
AddParser = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

# command -> (declares its flags, runs it); in the order `--help` lists them.
COMMANDS: Final[dict[str, tuple[AddParser, Command]]] = {
    "plan": (add_plan_parser, plan),
    "doctor": (add_doctor_parser, doctor),
    "package": (add_package_parser, package),
    "verify": (add_verify_parser, verify),
    "serving": (add_serving_parser, serving),
    "rollback": (add_rollback_parser, rollback),
    "migrate": (add_migrate_parser, migrate),
    "backup": (add_backup_parser, backup),
    "restore": (add_restore_parser, restore),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="backend-iac", description=DESCRIPTION)
    parser.add_argument("--version", action=_VersionAction)
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
