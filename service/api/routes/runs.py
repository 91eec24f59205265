"""Runs on a thread: wait for the result or stream it, and read their records."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from service.api.auth import Caller
from service.api.deps import State, ThreadId
from service.api.disconnect import client_gone
from service.api.encoding import encode, json_response
from service.api.limits import check_metadata
from service.api.routes.assistants import known_assistant
from service.api.thread_bodies import owned_thread
from service.schemas.models import ERROR_RESPONSES, RunCreate
from service.schemas.validation import quote
from service.storage.base import RunRecord, RunStatus
from service.storage.errors import RunActiveError, RunNotFoundError

router = APIRouter(prefix="/threads/{thread_id}/runs", tags=["runs"], responses=ERROR_RESPONSES)


def _check_request(body: RunCreate, state: State) -> None:
    if not known_assistant(body.assistant_id):
        raise HTTPException(404, f"Assistant {quote(body.assistant_id)} not found")
    check_metadata(body.metadata, state.settings, "run metadata")
    if body.config is not None:
        check_metadata(body.config.model_dump(exclude_unset=True), state.settings, "config")


@router.post(
    "/wait",
    operation_id="run_wait",
    response_model=dict[str, Any],
    responses={
        404: {"description": "Unknown thread or assistant"},
        409: {"description": "Thread busy (reject) or enqueue wait timed out"},
        413: {"description": "Input too large"},
        503: {"description": "Storage busy; retry after Retry-After seconds"},
    },
)
async def run_wait(
    thread_id: ThreadId, body: RunCreate, state: State, caller: Caller, request: Request
) -> Response:
    """Run one turn and return the thread's final values."""
    _check_request(body, state)
    execution = await state.runs.start(thread_id, body, caller.owner, client_gone(request))
    response = json_response(await execution.result())
    response.headers["Content-Location"] = f"/threads/{thread_id}/runs/{execution.run_id}"
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
    _check_request(body, state)
    execution = await state.runs.start(
        thread_id, body, caller.owner, client_gone(request), stream=True
    )

    async def events() -> AsyncIterator[ServerSentEvent]:
        async for event, data in execution.events():
            yield ServerSentEvent(data=encode(data).decode(), event=event)

    return EventSourceResponse(
        events(),
        ping=15,
        headers={"Content-Location": f"/threads/{thread_id}/runs/{execution.run_id}"},
    )


def _run_body(run: RunRecord) -> dict[str, Any]:
    """The LangGraph Server API's Run."""
    return {
        "run_id": run.run_id,
        "thread_id": run.thread_id,
        "assistant_id": run.assistant_id,
        "created_at": run.created_at,
        "updated_at": run.updated_at,
        "status": run.status,
        "metadata": run.metadata,
        "kwargs": run.kwargs,
        "multitask_strategy": run.multitask_strategy,
    }


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
    return json_response([_run_body(run) for run in runs])


@router.get("/{run_id}", operation_id="get_run", response_model=dict[str, Any])
async def get_run(thread_id: ThreadId, run_id: ThreadId, state: State, caller: Caller) -> Response:
    await owned_thread(state, caller, thread_id)
    run = await state.persistence.get_run(thread_id, run_id)
    if run is None:
        raise RunNotFoundError(thread_id, run_id)
    return json_response(_run_body(run))


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
