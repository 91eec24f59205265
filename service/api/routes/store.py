"""The Store API: long-term memory across threads (langgraph's own store, shared by all
workers), as LangGraph Server serves it.

With authentication on, each owner sees only the items under their own namespaces.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response
from langgraph.store.base import Item

from service.api.auth import Caller
from service.api.deps import State
from service.api.encoding import json_response
from service.api.limits import json_depth
from service.schemas.models import ERROR_RESPONSES
from service.schemas.store import (
    MAX_LABEL_CHARS,
    MAX_NAMESPACE_DEPTH,
    StoreDelete,
    StoreNamespaces,
    StorePut,
    StoreSearch,
)
from service.storage.store import scoped, unscoped

router = APIRouter(tags=["store"], responses=ERROR_RESPONSES)

NO_INDEX = "semantic search is not configured on this server: no index, no `query`"
DottedNamespace = Annotated[str, Query(min_length=1, max_length=1400)]


def _item(owner: str | None, item: Item) -> dict[str, Any]:
    body = item.dict()
    body["namespace"] = list(unscoped(owner, item.namespace))
    return body


def _namespace_from_query(dotted: str) -> tuple[str, ...]:
    labels = tuple(dotted.split("."))
    bad_label = any(not label or len(label) > MAX_LABEL_CHARS for label in labels)
    if bad_label or len(labels) > MAX_NAMESPACE_DEPTH:
        raise HTTPException(
            422,
            f"namespace: up to {MAX_NAMESPACE_DEPTH} non-empty labels of at most "
            f"{MAX_LABEL_CHARS} characters, joined by '.'",
        )
    return labels


@router.put("/store/items", status_code=204, operation_id="put_item")
async def put_item(body: StorePut, state: State, caller: Caller) -> Response:
    """Store or replace an item (`ttl` in minutes; STORE_DEFAULT_TTL_MINUTES without one)."""
    if isinstance(body.index, list):
        raise HTTPException(422, NO_INDEX)
    limit = state.settings.max_json_depth
    if json_depth(body.value, limit) > limit:
        raise HTTPException(422, f"value is nested deeper than {limit} levels (MAX_JSON_DEPTH)")
    await state.persistence.store.aput(
        scoped(caller.owner, tuple(body.namespace)),
        body.key,
        body.value,
        index=False,
        ttl=body.ttl,
    )
    return Response(status_code=204)


@router.get("/store/items", operation_id="get_item", response_model=dict[str, Any] | None)
async def get_item(
    namespace: DottedNamespace,
    key: Annotated[str, Query(min_length=1, max_length=512)],
    state: State,
    caller: Caller,
    refresh_ttl: bool | None = None,
) -> Response:
    """The item, or `null` when there is none (as LangGraph Server answers)."""
    stored = scoped(caller.owner, _namespace_from_query(namespace))
    item = await state.persistence.store.aget(stored, key, refresh_ttl=refresh_ttl)
    return json_response(None if item is None else _item(caller.owner, item))


@router.delete("/store/items", status_code=204, operation_id="delete_item")
async def delete_item(body: StoreDelete, state: State, caller: Caller) -> Response:
    await state.persistence.store.adelete(scoped(caller.owner, tuple(body.namespace)), body.key)
    return Response(status_code=204)


@router.post("/store/items/search", operation_id="search_items", response_model=dict[str, Any])
async def search_items(body: StoreSearch, state: State, caller: Caller) -> Response:
    """Items under a namespace prefix, filtered by their values' fields."""
    if body.query:
        raise HTTPException(422, NO_INDEX)
    items = await state.persistence.store.asearch(
        scoped(caller.owner, tuple(body.namespace_prefix)),
        filter=body.filter,
        limit=body.limit,
        offset=body.offset,
        refresh_ttl=body.refresh_ttl,
    )
    return json_response({"items": [_item(caller.owner, item) for item in items]})


@router.post("/store/namespaces", operation_id="list_namespaces", response_model=dict[str, Any])
async def list_namespaces(body: StoreNamespaces, state: State, caller: Caller) -> Response:
    """The namespaces that hold items (`prefix`, `suffix`, `max_depth`)."""
    owner = caller.owner
    prefix = scoped(owner, tuple(body.prefix or ()))
    max_depth = body.max_depth if owner is None or body.max_depth is None else body.max_depth + 1
    found = await state.persistence.store.alist_namespaces(
        prefix=prefix or None,
        suffix=tuple(body.suffix) if body.suffix else None,
        max_depth=max_depth,
        limit=body.limit,
        offset=body.offset,
    )
    return json_response({"namespaces": [list(unscoped(owner, ns)) for ns in found]})
