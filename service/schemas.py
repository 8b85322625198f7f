"""The API's shapes, by role: what a client sends to create or change an item, and what it gets back."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Final

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from service.db.records import Item

# No NUL characters: PostgreSQL text cannot hold one (psycopg refuses it, which was a 500), and SQLite would
# store it, so the two backends would disagree. The pattern also puts the rule in the OpenAPI document.
_NO_NUL = r"^[^\x00]*$"


# Unicode's control (Cc) and format (Cf) characters, as code point ranges: generated from Python 3.11's
# unicodedata (Unicode 14.0.0); U+13439..U+1343F (format controls Unicode 15.0 added, which Python 3.12
# knows) are included so both runtimes refuse the same names (that addition: unchecked).
_INVISIBLE_RANGES: Final = (
    (0x0000, 0x001F), (0x007F, 0x009F), (0x00AD, 0x00AD), (0x0600, 0x0605), (0x061C, 0x061C),
    (0x06DD, 0x06DD), (0x070F, 0x070F), (0x0890, 0x0891), (0x08E2, 0x08E2), (0x180E, 0x180E),
    (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x2064), (0x2066, 0x206F), (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB), (0x110BD, 0x110BD), (0x110CD, 0x110CD), (0x13430, 0x1343F), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0001, 0xE0001), (0xE0020, 0xE007F),
)  # fmt: skip
_INVISIBLE: Final = "".join(
    chr(low) if low == high else f"{chr(low)}-{chr(high)}" for low, high in _INVISIBLE_RANGES
)
# The rule as one regular expression, published in the OpenAPI document (so generated clients and
# fuzzers know it) and the very one the validator below applies: no invisible character, and at least
# one that is neither invisible nor whitespace.
NAME_PATTERN: Final = f"^[^{_INVISIBLE}]*[^{_INVISIBLE}\\s][^{_INVISIBLE}]*$"
_VISIBLE_NAME: Final = re.compile(NAME_PATTERN)
_INVISIBLE_CHARACTER: Final = re.compile(f"[{_INVISIBLE}]")


def _visible_name(value: str) -> str:
    """A name is shown to people: no control characters (Unicode category Cc: NUL, newlines, escapes) or
    format characters (Cf: bidirectional overrides such as U+202E, zero-width characters) that would make
    it display as something else, and not blank."""
    if _VISIBLE_NAME.match(value):
        return value
    if found := _INVISIBLE_CHARACTER.search(value):
        msg = f"must not contain control or format characters (found U+{ord(found.group()):04X})"
        raise ValueError(msg)
    msg = "must not be blank or whitespace only"
    raise ValueError(msg)


Name = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        description="1 to 200 characters, not blank, no control or format characters (Unicode Cc, Cf)",
        json_schema_extra={"pattern": NAME_PATTERN},
    ),
    AfterValidator(_visible_name),
]
Description = Annotated[
    str, Field(max_length=2000, pattern=_NO_NUL, description="at most 2000 characters, no NUL")
]


class ItemCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Description | None = None


class ItemUpdate(BaseModel):
    """A partial update: fields left out stay as they are; `description: null` clears it."""

    model_config = ConfigDict(extra="forbid")

    # May be left out, never null: the schema says a string, and an explicit null is a 422 naming the field
    # like any other invalid value. None is only the default, meaning "left out" (the route checks that).
    name: Name = None  # type: ignore[assignment]
    description: Description | None = None


class ItemPublic(BaseModel):
    id: str
    name: str
    description: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, item: Item) -> ItemPublic:
        return cls(
            id=item.id,
            name=item.name,
            description=item.description,
            created_at=item.created_at,
            updated_at=item.updated_at,
        )


class ItemPage(BaseModel):
    items: list[ItemPublic]
    limit: int
    offset: int
    next_offset: int | None = Field(description="the offset of the next page, or null on the last page")


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


class VersionInfo(BaseModel):
    version: str
    commit: str
    python: str
    started_at: datetime


class Problem(BaseModel):
    """An RFC 9457 problem document: the body of every error response (extension members vary)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = None
