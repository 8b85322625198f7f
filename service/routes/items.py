"""The example resource: items owned by the caller. Another caller's item is a 404, never a 403."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, HTTPException, Path, Query, Response, status

from service.db.records import UNSET
from service.deps import Reader, StoreDep, Writer
from service.schemas import ItemCreate, ItemPage, ItemPublic, ItemUpdate

router = APIRouter(prefix="/api/v1/items", tags=["items"])

ItemId = Annotated[UUID, Path(description="the item's id (a UUID)")]
_AUTH_RESPONSES: dict[int | str, dict[str, str]] = {
    401: {"description": "missing or invalid bearer token"},
    403: {"description": "the token lacks the needed scope"},
    503: {"description": "the database is not answering"},
}
_NOT_FOUND: dict[int | str, dict[str, str]] = {404: {"description": "no such item for this caller"}}


# Every operation here needs a bearer token (documented; enforced by the Reader/Writer dependencies).
_SECURED: dict[str, Any] = {"security": [{"bearerAuth": []}]}


def _not_found() -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, "no such item")


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=_AUTH_RESPONSES,
    summary="Create an item",
    openapi_extra=_SECURED,
)
async def create_item(body: ItemCreate, caller: Writer, store: StoreDep, response: Response) -> ItemPublic:
    item = await store.create_item(owner=caller.subject, name=body.name, description=body.description)
    response.headers["Location"] = f"{router.prefix}/{item.id}"
    return ItemPublic.of(item)


@router.get(
    "", responses=_AUTH_RESPONSES, summary="List the caller's items, oldest first", openapi_extra=_SECURED
)
async def list_items(
    caller: Reader,
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> ItemPage:
    # One row more than asked for tells whether another page exists without a count query.
    items = await store.list_items(owner=caller.subject, limit=limit + 1, offset=offset)
    has_more = len(items) > limit
    return ItemPage(
        items=[ItemPublic.of(item) for item in items[:limit]],
        limit=limit,
        offset=offset,
        next_offset=offset + limit if has_more else None,
    )


@router.get(
    "/{item_id}", responses={**_AUTH_RESPONSES, **_NOT_FOUND}, summary="Read one item", openapi_extra=_SECURED
)
async def get_item(item_id: ItemId, caller: Reader, store: StoreDep) -> ItemPublic:
    item = await store.get_item(owner=caller.subject, item_id=str(item_id))
    if item is None:
        raise _not_found()
    return ItemPublic.of(item)


@router.patch(
    "/{item_id}",
    responses={**_AUTH_RESPONSES, **_NOT_FOUND},
    summary="Change an item's fields",
    openapi_extra=_SECURED,
)
async def update_item(item_id: ItemId, body: ItemUpdate, caller: Writer, store: StoreDep) -> ItemPublic:
    fields = body.model_fields_set  # a null name never gets here: ItemUpdate refuses it (422)
    item = await store.update_item(
        owner=caller.subject,
        item_id=str(item_id),
        name=body.name if "name" in fields else UNSET,
        description=body.description if "description" in fields else UNSET,
    )
    if item is None:
        raise _not_found()
    return ItemPublic.of(item)


@router.delete(
    "/{item_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,  # a 204 has no body, so it names no body type either
    responses={**_AUTH_RESPONSES, **_NOT_FOUND},
    summary="Delete an item",
    openapi_extra=_SECURED,
)
async def delete_item(item_id: ItemId, caller: Writer, store: StoreDep) -> None:
    if not await store.delete_item(owner=caller.subject, item_id=str(item_id)):
        raise _not_found()
