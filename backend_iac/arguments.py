"""Argument types the command line checks before any command runs (argparse turns a refusal into exit 2).

A leaf module with no heavy imports, so `backend-iac --help` stays fast.
"""

from __future__ import annotations

import argparse
import re
from typing import Final
from urllib.parse import urlsplit

_HEX_SHA: Final = re.compile(r"[0-9a-f]{7,40}")
MIN_COMMIT_PREFIX: Final = 7  # git's own default abbreviation length (core.abbrev)


def commit_sha(text: str) -> str:
    """A commit as hex: a full SHA-1 or a prefix of at least MIN_COMMIT_PREFIX characters, lower-cased."""
    value = text.strip().lower()
    if not _HEX_SHA.fullmatch(value):
        msg = (
            f"{text!r} is not a commit SHA: give the hex commit id, at least {MIN_COMMIT_PREFIX} characters "
            "(e.g. `git rev-parse HEAD`, or the 12 characters in the zip's name)"
        )
        raise argparse.ArgumentTypeError(msg)
    return value


def http_url(text: str) -> str:
    """An absolute http(s) URL with a host, without a trailing slash."""
    value = text.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        msg = (
            f"{text!r} is not an http(s) URL: give the scheme and host, e.g. https://<app>.azurewebsites.net"
        )
        raise argparse.ArgumentTypeError(msg)
    return value.rstrip("/")
