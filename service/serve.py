"""`python -m service.serve` (what `make serve` runs): every setting checked, then the start command itself.

Gunicorn reads `WEB_CONCURRENCY` with `int()` while its own config module is imported (gunicorn/config.py,
`Workers.default`), before any configuration of ours runs: `WEB_CONCURRENCY=two` is a traceback there, not
the named start-up error every other setting gets. This launcher parses the settings first, exactly as
`service.gunicorn_conf` does, and only then replaces itself with `service.startup.STARTUP_COMMAND`
(`exec`, same process id, same environment): what runs after the check is what App Service runs.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import NoReturn

from service.config import ConfigurationError, Settings, get_settings
from service.startup import STARTUP_COMMAND

# The exit status of a start-up refused for its configuration (gunicorn_conf uses the same).
CONFIGURATION_EXIT_CODE = 3


def settings_or_exit() -> Settings:
    """Every setting, gunicorn's included, parsed once: a bad value exits 3 with every bad setting named
    (not a traceback from int(), not gunicorn's terse error)."""
    try:
        return get_settings()
    except ConfigurationError as error:
        print(f"backend-iac: start-up refused: {error}", file=sys.stderr, flush=True)
        sys.exit(CONFIGURATION_EXIT_CODE)


def main() -> NoReturn:
    settings_or_exit()
    words = shlex.split(STARTUP_COMMAND)
    # The interpreter's own bin directory first: gunicorn is installed beside the python running this.
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    program = shutil.which(words[0], path=search)
    if program is None:
        print(f"backend-iac: start-up refused: {words[0]} is not installed here", file=sys.stderr)
        sys.exit(CONFIGURATION_EXIT_CODE)
    os.execv(program, words)  # noqa: S606 - the fixed start command, no shell, no user input


if __name__ == "__main__":
    main()
