"""Secrets out of text before it is logged or shown: database URL passwords, in every form libpq quotes.

libpq's own error messages quote the part of a connection URL they could not parse, and that part is
often the password alone (`invalid percent-encoded token: "s3%zzcret"`), so a pattern for `user:pass@`
is not enough: the password the process was given is redacted wherever it appears, too.
"""

from __future__ import annotations

import logging
import os
import re
import traceback
from collections.abc import Iterable
from typing import Final
from urllib.parse import unquote

MASK: Final = "***"

# scheme://user:password@ -> scheme://user:***@ (the password runs to the last @ before a path).
_URL_USERINFO: Final = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^:@/\s]*):[^\s/]*@")
# password=... in libpq key/value strings and URL query strings, quoted or not.
_PASSWORD_PARAMETER: Final = re.compile(
    r"(?P<head>\bpassword\s*=\s*)(?:'(?:[^'\\]|\\.)*'|[^\s&]+)", re.IGNORECASE
)
# Too short to tell from ordinary words: such a password is still masked in URLs, not on its own.
_MIN_LITERAL_SECRET: Final = 4


def url_password(url: str) -> str | None:
    """The password of a scheme://user:password@host URL, found without a parser that could refuse it."""
    _, separator, rest = url.partition("://")
    if not separator:
        return None
    userinfo, at, _ = rest.rpartition("@")
    if not at or "/" in userinfo.split(":", 1)[0]:
        return None
    _, colon, password = userinfo.partition(":")
    return password if colon and password else None


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with URL passwords, password= parameters and each given secret (raw and decoded) masked."""
    text = _URL_USERINFO.sub(rf"\g<head>:{MASK}@", text)
    text = _PASSWORD_PARAMETER.sub(rf"\g<head>{MASK}", text)
    for secret in secrets:
        for form in {secret, unquote(secret)}:
            if len(form) >= _MIN_LITERAL_SECRET:
                text = text.replace(form, MASK)
    return text


def secrets_from_environment() -> tuple[str, ...]:
    """The secrets this process was given in its environment: DATABASE_URL's password."""
    password = url_password(os.environ.get("DATABASE_URL", ""))
    return (password,) if password else ()


class RedactSecretsFilter(logging.Filter):
    """A handler filter: every record's message (arguments merged) and traceback, redacted."""

    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        self.secrets = secrets_from_environment()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed log call: log its template, not a failure
            message = str(record.msg)
        cleaned = redact(message, self.secrets)
        if record.exc_info and record.exc_info[1] is not None:
            rendered = "".join(traceback.format_exception(*record.exc_info))
            redacted = redact(rendered, self.secrets)
            if redacted != rendered:  # the traceback names a secret: keep the text, drop the objects
                cleaned = f"{cleaned}\n{redacted}"
                record.exc_info = None
                record.exc_text = None
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True
