"""Threads: create, read, update, copy, search, count, delete, prune."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request, Response

from service.api.auth import Caller, Principal
from service.api.deps import AppState, State, ThreadId
from service.api.encoding import json_response
from service.api.limits import check_metadata
from service.api.thread_bodies import (
    owned_thread,
    owner_metadata,
    state_body,
    thread_body,
    thread_status,
)
from service.api.thread_listing import ThreadLister, select_fields, wants_values
from service.runs.state_updates import apply_supersteps, check_supersteps
from service.schemas.models import (
    ERROR_RESPONSES,
    ThreadCount,
    ThreadCreate,
    ThreadPatch,
    ThreadPrune,
    ThreadSearch,
    ttl_minutes,
)
from service.storage.errors import ThreadExistsError, ThreadNotFoundError

router = APIRouter(prefix="/threads", tags=["threads"], responses=ERROR_RESPONSES)

# OpenAPI links from a created thread to what can be done with it (stateful fuzzing
# follows them; so can a generated client).
THREAD_LINKS = {
    operation: {"operationId": operation, "parameters": {"thread_id": "$response.body#/thread_id"}}
    for operation in (
        "get_thread",
        "get_thread_state",
        "get_thread_history",
        "run_wait",
        "run_stream",
        "delete_thread",
    )
}


@router.post(
    "",
    operation_id="create_thread",
    response_model=dict[str, Any],
    responses={200: {"links": THREAD_LINKS}},
)
async def create_thread(body: ThreadCreate, state: State, caller: Caller) -> Response:
    check_metadata(body.metadata, state.settings)
    thread_id = body.thread_id or str(uuid.uuid4())
    metadata = owner_metadata(caller, body.metadata)
    if body.supersteps:
        check_supersteps(state.graph, body.supersteps, state.settings)
    record, created = await state.persistence.create_thread(
        thread_id, metadata, body.if_exists, ttl_minutes(body.ttl)
    )
    if not caller.owns(record.metadata):
        raise ThreadExistsError(thread_id)
    if not (created and body.supersteps):
        return json_response(thread_body(record, thread_status(state, record, False)))
    try:
        async with state.persistence.guard.hold(
            thread_id, wait=True, timeout_s=state.settings.enqueue_timeout_s
        ):
            await apply_supersteps(state.graph, thread_id, body.supersteps)
    except BaseException:
        # Nothing of a refused create stays behind.
        await state.persistence.delete_thread(thread_id)
        raise
    return json_response(await state_body(state, record))


def _lister(state: AppState, caller: Principal, body: ThreadCount) -> ThreadLister:
    check_metadata(body.metadata, state.settings, "metadata filter")
    if body.values:
        check_metadata(body.values, state.settings, "values filter")
    return ThreadLister(state, body, owner_metadata(caller, body.metadata))


@router.post("/search", operation_id="search_threads", response_model=list[dict[str, Any]])
async def search_threads(body: ThreadSearch, state: State, caller: Caller) -> Response:
    """Filters, order and paging as LangGraph Server's; each thread with its values."""
    lister = _lister(state, caller, body)
    records = await lister.search(body.limit, body.offset)
    if wants_values(body):
        found = [
            await state_body(state, record, lister.snapshots.get(record.thread_id))
            for record in records
        ]
    else:
        found = [thread_body(r, thread_status(state, r, False)) for r in records]
    return json_response([select_fields(item, body) for item in found])


@router.post("/count", operation_id="count_threads", response_model=int)
async def count_threads(body: ThreadCount, state: State, caller: Caller) -> int:
    return await _lister(state, caller, body).count()


@router.post("/prune", operation_id="prune_threads")
async def prune_threads(body: ThreadPrune, state: State, caller: Caller) -> dict[str, int]:
    """LangGraph Server's prune: `delete` whole threads or `keep_latest` checkpoint.

    Every thread must exist and be the caller's, else 404 and nothing is pruned.
    """
    thread_ids = list(dict.fromkeys(body.thread_ids))
    for thread_id in thread_ids:
        await owned_thread(state, caller, thread_id)
    pruned = 0
    for thread_id in thread_ids:
        async with state.persistence.guard.hold(
            thread_id, wait=True, timeout_s=state.settings.enqueue_timeout_s
        ):
            pruned += await state.persistence.prune_threads([thread_id], body.strategy)
    return {"pruned_count": pruned}


@router.get("/{thread_id}", operation_id="get_thread", response_model=dict[str, Any])
async def get_thread(thread_id: ThreadId, state: State, caller: Caller) -> Response:
    record = await owned_thread(state, caller, thread_id)
    return json_response(await state_body(state, record))


@router.patch(
    "/{thread_id}",
    operation_id="patch_thread",
    response_model=dict[str, Any],
    responses={204: {"description": "Updated (`Prefer: return=minimal`)"}},
)
async def patch_thread(
    thread_id: ThreadId, body: ThreadPatch, state: State, caller: Caller, request: Request
) -> Response:
    """Merge `metadata` into the thread's (top-level keys, as LangGraph Server does)."""
    await owned_thread(state, caller, thread_id)
    patch = owner_metadata(caller, body.metadata)
    check_metadata(patch, state.settings)
    record = await state.persistence.update_thread(thread_id, patch, ttl_minutes(body.ttl))
    if record is None:
        raise ThreadNotFoundError(thread_id)
    if "return=minimal" in request.headers.get("prefer", ""):
        return Response(status_code=204)
    return json_response(await state_body(state, record))


@router.post("/{thread_id}/copy", operation_id="copy_thread", response_model=dict[str, Any])
async def copy_thread(thread_id: ThreadId, state: State, caller: Caller) -> Response:
    """A new thread with this one's checkpoints and metadata; waits for a run in flight."""
    await owned_thread(state, caller, thread_id)
    target = str(uuid.uuid4())
    async with state.persistence.guard.hold(
        thread_id, wait=True, timeout_s=state.settings.enqueue_timeout_s
    ):
        if await state.persistence.get_thread(thread_id) is None:
            raise ThreadNotFoundError(thread_id)
        record = await state.persistence.copy_thread(thread_id, target)
    return json_response(await state_body(state, record))


@router.delete("/{thread_id}", status_code=204, operation_id="delete_thread")
async def delete_thread(thread_id: ThreadId, state: State, caller: Caller) -> Response:
    """Waits for a run in flight on the thread to finish, then deletes everything."""
    await owned_thread(state, caller, thread_id)
    async with state.persistence.guard.hold(
        thread_id, wait=True, timeout_s=state.settings.enqueue_timeout_s
    ):
        if not await state.persistence.delete_thread(thread_id):
            raise ThreadNotFoundError(thread_id)
    return Response(status_code=204)
