"""The reference for the database path: what a user would write by hand, a bare FastAPI app reading one
row through psycopg's async pool (no auth, no middleware, no timeouts beyond the pool's), run under the
same gunicorn settings as the service against the same PostgreSQL server (DATABASE_URL).

The pool is sized like the service's (PostgresStore: min 1, max 5) and the row is returned as a typed
pydantic model, as FastAPI's documentation recommends, so the comparison is like for like.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from uuid import UUID

from fastapi import FastAPI, HTTPException
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel


class Item(BaseModel):
    id: str
    name: str
    description: str | None
    created_at: datetime
    updated_at: datetime


pool = AsyncConnectionPool(os.environ.get("DATABASE_URL", ""), min_size=1, max_size=5, open=False)


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    await pool.open(wait=True, timeout=10.0)
    yield
    await pool.close(timeout=2.0)


app = FastAPI(lifespan=lifespan)


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/api/v1/items/{item_id}")
async def read_item(item_id: UUID) -> Item:
    async with pool.connection(timeout=3.0) as conn:
        cursor = await conn.execute(
            "SELECT id, name, description, created_at, updated_at FROM items WHERE id = %s", (item_id,)
        )
        row = await cursor.fetchone()
    if row is None:
        raise HTTPException(404, "no such item")
    return Item(id=str(row[0]), name=row[1], description=row[2], created_at=row[3], updated_at=row[4])
