"""Runs without a thread of the client's (a temporary one, deleted once the run ends
unless `on_completion=keep`), batches of background runs, and cancels by filter."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response
from sse_starlette import EventSourceResponse

from service.api.auth import Caller
from service.api.deps import State
from service.api.disconnect import client_gone
from service.api.encoding import json_response
from service.api.run_bodies import (
    check_run_request,
    run_body,
    run_location,
    stateless,
    stream_response,
    submit_batch,
)
from service.schemas.models import (
    ERROR_RESPONSES,
    MAX_BATCH_RUNS,
    BatchRunCreate,
    RunCancelMany,
    RunCreate,
)
from service.storage.base import CancelAction

router = APIRouter(prefix="/runs", tags=["stateless runs"], responses=ERROR_RESPONSES)


@router.post("/wait", operation_id="stateless_run_wait", response_model=dict[str, Any])
async def stateless_wait(
    body: RunCreate, state: State, caller: Caller, request: Request
) -> Response:
    """Run on a new thread and return its final values."""
    check_run_request(body, state)
    thread_id, run_request, temporary = stateless(body)
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
    thread_id, run_request, temporary = stateless(body)
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
    thread_id, run_request, temporary = stateless(body)
    run = await state.runs.submit(thread_id, run_request, caller.owner, temporary=temporary)
    return json_response(run_body(run))


@router.post("/batch", operation_id="create_run_batch", response_model=list[dict[str, Any]])
async def create_batch(
    payloads: Annotated[list[BatchRunCreate], Body(min_length=1, max_length=MAX_BATCH_RUNS)],
    state: State,
    caller: Caller,
) -> Response:
    """Background runs, each on its thread or a new one. All are checked before any is
    accepted, their threads included; only a thread found busy (`reject`) as the
    batch is accepted stops it there."""
    return json_response(await submit_batch(state, caller.owner, payloads))


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
