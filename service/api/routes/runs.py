"""Runs on a thread: wait for the result, or stream it as server-sent events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from service.api.auth import Caller
from service.api.deps import State, ThreadId
from service.api.disconnect import client_gone
from service.api.encoding import encode, json_response
from service.api.limits import check_metadata
from service.api.routes.assistants import known_assistant
from service.schemas.models import ERROR_RESPONSES, RunCreate
from service.schemas.validation import quote

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
    return json_response(await execution.result())


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
