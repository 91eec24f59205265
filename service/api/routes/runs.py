"""Runs on a thread: wait for the result, stream it, or run it in the background; join,
cancel, and read their records."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, HTTPException, Query, Request, Response
from sse_starlette import EventSourceResponse

from service.api.auth import Caller
from service.api.deps import AppState, State, ThreadId
from service.api.disconnect import client_gone
from service.api.encoding import json_response
from service.api.run_bodies import (
    check_run_request,
    replay_response,
    run_body,
    run_location,
    stream_response,
    submit_batch,
    thread_values,
)
from service.api.thread_bodies import owned_thread
from service.runs.replay import follow_run
from service.schemas.models import (
    ERROR_RESPONSES,
    MAX_BATCH_RUNS,
    STREAM_MODES,
    BatchRunCreate,
    RunCreate,
)
from service.storage.base import CancelAction, RunRecord, RunStatus
from service.storage.errors import RunActiveError, RunEndedError, RunNotFoundError

router = APIRouter(prefix="/threads/{thread_id}/runs", tags=["runs"], responses=ERROR_RESPONSES)

_RUN_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "Unknown thread or assistant"},
    409: {"description": "Thread busy (reject) or enqueue wait timed out"},
    413: {"description": "Input too large"},
    503: {"description": "Storage busy; retry after Retry-After seconds"},
}


@router.post("/wait", operation_id="run_wait", response_model=dict[str, Any], responses=_RUN_ERRORS)
async def run_wait(
    thread_id: ThreadId, body: RunCreate, state: State, caller: Caller, request: Request
) -> Response:
    """Run one turn and return the thread's final values."""
    check_run_request(body, state)
    execution = await state.runs.start(thread_id, body, caller.owner, client_gone(request))
    response = json_response(await execution.result())
    location = run_location(thread_id, execution.run_id)
    response.headers["Content-Location"] = location
    # Where the SDK reconnects if the answer is cut off.
    response.headers["Location"] = f"{location}/join"
    return response


@router.post(
    "/stream",
    operation_id="run_stream",
    responses={200: {"content": {"text/event-stream": {}}, "description": "SSE stream"}},
)
async def run_stream(
    thread_id: ThreadId, body: RunCreate, state: State, caller: Caller, request: Request
) -> EventSourceResponse:
    """Stream one turn: `metadata` first, then the requested modes, `end` last."""
    check_run_request(body, state)
    execution = await state.runs.start(
        thread_id, body, caller.owner, client_gone(request), stream=True
    )
    return stream_response(execution)


@router.post("", operation_id="create_run", response_model=dict[str, Any], responses=_RUN_ERRORS)
async def create_run(
    thread_id: ThreadId, body: RunCreate, state: State, caller: Caller
) -> Response:
    """Accept a background run (`pending`); any worker runs it, in the thread's order."""
    check_run_request(body, state)
    run = await state.runs.submit(thread_id, body, caller.owner)
    response = json_response(run_body(run))
    response.headers["Content-Location"] = run_location(thread_id, run.run_id)
    return response


@router.post("/batch", operation_id="create_thread_run_batch", response_model=list[dict])
async def create_batch(
    thread_id: ThreadId,
    payloads: Annotated[list[BatchRunCreate], Body(min_length=1, max_length=MAX_BATCH_RUNS)],
    state: State,
    caller: Caller,
) -> Response:
    """Background runs on this thread (or each on the `thread_id` it names), queued in
    the order sent; all are checked before the first is accepted."""
    return json_response(await submit_batch(state, caller.owner, payloads, thread_id))


@router.get("", operation_id="list_runs", response_model=list[dict[str, Any]])
async def list_runs(
    thread_id: ThreadId,
    state: State,
    caller: Caller,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    status: RunStatus | None = None,
) -> Response:
    """The thread's runs, newest first."""
    await owned_thread(state, caller, thread_id)
    runs = await state.persistence.list_runs(thread_id, status, limit, offset)
    return json_response([run_body(run) for run in runs])


@router.get("/{run_id}", operation_id="get_run", response_model=dict[str, Any])
async def get_run(thread_id: ThreadId, run_id: ThreadId, state: State, caller: Caller) -> Response:
    await owned_thread(state, caller, thread_id)
    run = await state.persistence.get_run(thread_id, run_id)
    if run is None:
        raise RunNotFoundError(thread_id, run_id)
    return json_response(run_body(run))


@router.get("/{run_id}/join", operation_id="join_run", response_model=dict[str, Any])
async def join_run(thread_id: ThreadId, run_id: ThreadId, state: State, caller: Caller) -> Response:
    """Wait for the run to end, on whichever worker runs it; the thread's values then."""
    await owned_thread(state, caller, thread_id)
    joined = await state.runs.join(thread_id, run_id)
    if joined is None:  # unknown, rolled back, or deleted (with its thread)
        raise RunNotFoundError(thread_id, run_id)
    if joined.values is not None:  # it ran here: its own result, as runs/wait answers
        return json_response(joined.values)
    return json_response(await thread_values(state, thread_id))


@router.get(
    "/{run_id}/stream",
    operation_id="join_run_stream",
    responses={200: {"content": {"text/event-stream": {}}, "description": "SSE stream"}},
)
async def join_stream(
    thread_id: ThreadId,
    run_id: ThreadId,
    state: State,
    caller: Caller,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    last_event_id: Annotated[str | None, Query(max_length=20)] = None,
    stream_mode: Annotated[list[str] | None, Query(max_length=10)] = None,
    cancel_on_disconnect: bool = False,
) -> EventSourceResponse:
    """Follow a run's stream from any worker: replay a resumable run's events after
    `Last-Event-ID`, then each as it comes, until the run ends."""
    await owned_thread(state, caller, thread_id)
    run = await state.persistence.get_run(thread_id, run_id)
    if run is None:
        raise RunNotFoundError(thread_id, run_id)
    after = _event_id(last_event_id_header or last_event_id)
    wanted = _stream_events(stream_mode)
    events = follow_run(state.runs, thread_id, run_id, after)
    if cancel_on_disconnect:
        events = _cancelled_on_disconnect(events, state, run)
    return replay_response(events, wanted)


def _event_id(raw: str | None) -> int:
    if raw is None or raw == "":
        return 0
    if not raw.isdigit() or len(raw) > 18:
        raise HTTPException(422, "Last-Event-ID must be the id of an event this run sent")
    return int(raw)


def _stream_events(modes: list[str] | None) -> set[str] | None:
    """The stream modes a joiner asked for (None: all)."""
    asked = [mode for mode in modes or [] if mode]
    unknown = sorted(set(asked) - set(STREAM_MODES))
    if unknown:
        raise HTTPException(422, f"stream_mode must be among {list(STREAM_MODES)}; got {unknown}")
    if not asked:
        return None
    return set(asked)


async def _cancelled_on_disconnect(
    events: AsyncIterator[tuple[int, str, str]], state: AppState, run: RunRecord
) -> AsyncIterator[tuple[int, str, str]]:
    """The events; if the client leaves before the end, the run is cancelled."""
    ended = False
    try:
        async for item in events:
            ended = item[1] in ("end", "error")
            yield item
    finally:
        if not ended:
            await asyncio.shield(state.runs.cancel(run, "interrupt"))


@router.post("/{run_id}/cancel", operation_id="cancel_run", status_code=202)
async def cancel_run(
    thread_id: ThreadId,
    run_id: ThreadId,
    state: State,
    caller: Caller,
    wait: bool = False,
    action: CancelAction = "interrupt",
) -> Response:
    """Stop a pending or running run, wherever it runs; with `wait`, once it has stopped.
    `rollback` deletes the run and what it wrote to the thread."""
    await owned_thread(state, caller, thread_id)
    run = await state.persistence.get_run(thread_id, run_id)
    if run is None:
        raise RunNotFoundError(thread_id, run_id)
    if await state.runs.cancel(run, action) is None:
        ended = await state.persistence.get_run(thread_id, run_id)
        raise RunEndedError(run_id, ended.status if ended else run.status)
    if not wait:
        return Response(status_code=202)
    await state.runs.join(thread_id, run_id)
    return Response(status_code=204)


@router.delete("/{run_id}", status_code=204, operation_id="delete_run")
async def delete_run(
    thread_id: ThreadId, run_id: ThreadId, state: State, caller: Caller
) -> Response:
    """Delete a finished run's record (its checkpoints stay in the thread)."""
    await owned_thread(state, caller, thread_id)
    if not await state.persistence.delete_run(thread_id, run_id):
        run = await state.persistence.get_run(thread_id, run_id)
        if run is None:
            raise RunNotFoundError(thread_id, run_id)
        raise RunActiveError(run_id)
    return Response(status_code=204)
