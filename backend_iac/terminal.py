"""Tables and colour for a person at a terminal; plain text for pipes, files, CI logs and NO_COLOR.

Rich (well kept, already how pip and many CLIs draw tables) is imported only when a terminal will show
the result, so JSON, pipes and tests pay nothing for it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.console import Console


def is_styled(stream: TextIO) -> bool:
    """A terminal that wants styling: a TTY, NO_COLOR unset or empty (https://no-color.org), TERM not dumb."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def console_for(stream: TextIO) -> Console:
    """A rich Console writing to `stream` (call only when is_styled(stream))."""
    from rich.console import Console

    return Console(file=stream, highlight=False, soft_wrap=False)
