"""What the store holds and returns: plain data, free of HTTP types."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Item:
    id: str
    owner: str
    name: str
    description: str | None
    created_at: datetime
    updated_at: datetime


class Unset:
    """Marks a field a partial update leaves alone (distinct from None, which clears it)."""


UNSET = Unset()
