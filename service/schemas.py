"""The API's shapes, by role: what a client sends to create or change an item, and what it gets back."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from service.db.records import Item

# No NUL characters: PostgreSQL text cannot hold one (psycopg refuses it, which was a 500), and SQLite would
# store it, so the two backends would disagree. The pattern also puts the rule in the OpenAPI document.
_NO_NUL = r"^[^\x00]*$"


def _visible_name(value: str) -> str:
    """A name is shown to people: no control characters (Unicode category Cc: NUL, newlines, escapes) or
    format characters (Cf: bidirectional overrides such as U+202E, zero-width characters) that would make
    it display as something else, and not blank."""
    for character in value:
        if unicodedata.category(character) in ("Cc", "Cf"):
            msg = f"must not contain control or format characters (found U+{ord(character):04X})"
            raise ValueError(msg)
    if not value.strip():
        msg = "must not be blank or whitespace only"
        raise ValueError(msg)
    return value


Name = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        pattern=_NO_NUL,
        description="1 to 200 characters, not blank, no control or format characters (Unicode Cc, Cf)",
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
