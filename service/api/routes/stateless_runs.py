"""Runs without a thread of the client's (a temporary one, deleted once the run ends
unless `on_completion=keep`), batches of background runs, and cancels by filter."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response
from sse_starlette import EventSourceResponse

from service.api.auth import Caller
from service.api.deps import AppState, State
from service.api.disconnect import client_gone
from service.api.encoding import json_response
from service.api.run_bodies import check_run_request, run_body, run_location, stream_response
from service.schemas.models import (
    ERROR_RESPONSES,
    MAX_BATCH_RUNS,
    BatchRunCreate,
    RunCancelMany,
    RunCreate,
)
from service.storage.base import CancelAction, RunRecord

router = APIRouter(prefix="/runs", tags=["stateless runs"], responses=ERROR_RESPONSES)


def _stateless(body: RunCreate) -> tuple[str, RunCreate, bool]:
    """A new thread for the run, the request that creates it, and whether it is temporary."""
    request = body.model_copy(update={"if_not_exists": "create"})
    return str(uuid.uuid4()), request, body.on_completion != "keep"


@router.post("/wait", operation_id="stateless_run_wait", response_model=dict[str, Any])
async def stateless_wait(
    body: RunCreate, state: State, caller: Caller, request: Request
) -> Response:
    """Run on a new thread and return its final values."""
    check_run_request(body, state)
    thread_id, run_request, temporary = _stateless(body)
    execution = await state.runs.start(
        thread_id, run_request, caller.owner, client_gone(request), temporary=temporary
    )
    response = json_response(await execution.result())
    if not temporary:
        response.headers["Content-Location"] = run_location(thread_id, execution.run_id)
    return response


@router.post(
    "/stream",
    operation_id="stateless_run_stream",
    responses={200: {"content": {"text/event-stream": {}}, "description": "SSE stream"}},
)
async def stateless_stream(
    body: RunCreate, state: State, caller: Caller, request: Request
) -> EventSourceResponse:
    """Stream a run on a new thread."""
    check_run_request(body, state)
    thread_id, run_request, temporary = _stateless(body)
    execution = await state.runs.start(
        thread_id,
        run_request,
        caller.owner,
        client_gone(request),
        stream=True,
        temporary=temporary,
    )
    return stream_response(execution)


@router.post("", operation_id="stateless_run_create", response_model=dict[str, Any])
async def stateless_create(body: RunCreate, state: State, caller: Caller) -> Response:
    """A background run on a new thread."""
    check_run_request(body, state)
    thread_id, run_request, temporary = _stateless(body)
    run = await state.runs.submit(thread_id, run_request, caller.owner, temporary=temporary)
    return json_response(run_body(run))


async def _submit(state: AppState, owner: str | None, item: BatchRunCreate) -> RunRecord:
    fields = item.model_dump(exclude_unset=True, exclude={"thread_id"})
    body = RunCreate.model_validate(fields)
    if item.thread_id is None:
        thread_id, run_request, temporary = _stateless(body)
        return await state.runs.submit(thread_id, run_request, owner, temporary=temporary)
    return await state.runs.submit(item.thread_id, body, owner)


@router.post("/batch", operation_id="create_run_batch", response_model=list[dict[str, Any]])
async def create_batch(
    payloads: Annotated[list[BatchRunCreate], Body(min_length=1, max_length=MAX_BATCH_RUNS)],
    state: State,
    caller: Caller,
) -> Response:
    """Background runs, each on its thread or a new one. All are checked before any is
    accepted, their threads included; only a thread found busy (`reject`) as the
    batch is accepted stops it there."""
    for item in payloads:
        check_run_request(item, state)
        state.runs.check(item)
        if item.thread_id is not None:
            await state.runs.thread_for(item.thread_id, item, caller.owner)
    return json_response([run_body(await _submit(state, caller.owner, item)) for item in payloads])


@router.post("/cancel", operation_id="cancel_runs", status_code=204)
async def cancel_many(
    body: RunCancelMany, state: State, caller: Caller, action: CancelAction = "interrupt"
) -> Response:
    """Cancel the caller's active runs: of a thread, by id, or all pending / running."""
    await state.runs.cancel_many(
        caller.owner,
        thread_id=body.thread_id,
        run_ids=body.run_ids,
        status=None if body.status in (None, "all") else body.status,
        action=action,
    )
    return Response(status_code=204)
