"""The example resource: items owned by the caller. Another caller's item is a 404, never a 403."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, HTTPException, Path, Query, Response, status

from service.db.records import UNSET
from service.deps import Reader, Writer
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


# The Idempotency-Key request header (draft-ietf-httpapi-idempotency-key-header-07, section 2): the
# draft's form is a Structured Field string (RFC 8941), quoted; the bare form most clients send is
# accepted too. Either way the key is 1 to 255 visible ASCII characters without quote or backslash, so
# every value the pattern admits means exactly one key (no escapes to decode).
_KEY_CHARS = r"[\x21\x23-\x5b\x5d-\x7e]{1,255}"
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=rf'^(?:"{_KEY_CHARS}"|{_KEY_CHARS})$',
        description=(
            "Makes a retried create safe (IETF draft-ietf-httpapi-idempotency-key-header). A unique value "
            "per intended create (a UUID is best), 1 to 255 visible ASCII characters without quote or "
            'backslash, bare or as a quoted string ("..."). Repeating the request with the same key and '
            "body, within 24 hours, returns the original 201 (same item, same Location) and creates "
            "nothing; the same key with another body is a 422; a repeat while the first is still being "
            "processed is a 409. Keys belong to the caller: another caller's equal key is unrelated."
        ),
    ),
]
_CREATE_RESPONSES: dict[int | str, dict[str, str]] = {
    **_AUTH_RESPONSES,
    409: {"description": "a request with the same Idempotency-Key is still being processed; retry later"},
    422: {"description": "invalid fields, or an Idempotency-Key already used with a different body"},
}


def _not_found() -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, "no such item")


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=_CREATE_RESPONSES,
    summary="Create an item",
    openapi_extra=_SECURED,
)
async def create_item(
    body: ItemCreate,
    access: Writer,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> ItemPublic:
    item = await access.store.create_item(
        owner=access.caller.subject,
        name=body.name,
        description=body.description,
        idempotency_key=idempotency_key.strip('"') if idempotency_key else None,
    )
    response.headers["Location"] = f"{router.prefix}/{item.id}"
    return ItemPublic.of(item)


@router.get(
    "", responses=_AUTH_RESPONSES, summary="List the caller's items, oldest first", openapi_extra=_SECURED
)
async def list_items(
    access: Reader,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> ItemPage:
    # One row more than asked for tells whether another page exists without a count query.
    items = await access.store.list_items(owner=access.caller.subject, limit=limit + 1, offset=offset)
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
async def get_item(item_id: ItemId, access: Reader) -> ItemPublic:
    item = await access.store.get_item(owner=access.caller.subject, item_id=str(item_id))
    if item is None:
        raise _not_found()
    return ItemPublic.of(item)


@router.patch(
    "/{item_id}",
    responses={**_AUTH_RESPONSES, **_NOT_FOUND},
    summary="Change an item's fields",
    openapi_extra=_SECURED,
)
async def update_item(item_id: ItemId, body: ItemUpdate, access: Writer) -> ItemPublic:
    fields = body.model_fields_set  # a null name never gets here: ItemUpdate refuses it (422)
    item = await access.store.update_item(
        owner=access.caller.subject,
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
async def delete_item(item_id: ItemId, access: Writer) -> None:
    if not await access.store.delete_item(owner=access.caller.subject, item_id=str(item_id)):
        raise _not_found()
