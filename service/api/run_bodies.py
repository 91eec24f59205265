"""Runs as the API shows them, shared by the thread-run and stateless-run routers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent

from service.api.deps import AppState
from service.api.limits import check_metadata
from service.api.thread_bodies import thread_config
from service.api.webhooks import check_webhook_target
from service.runs.encoding import encode
from service.runs.execution import RunExecution
from service.runs.stream_modes import event_mode
from service.schemas.models import BatchRunCreate, RunCreate
from service.storage.base import RunRecord


def check_run_request(body: RunCreate, state: AppState) -> None:
    """What every run endpoint checks before it touches storage (the assistant is
    looked up when the run is prepared or accepted)."""
    check_metadata(body.metadata, state.settings, "run metadata")
    check_webhook_target(body.webhook, state.settings)
    if body.config is not None:
        check_metadata(body.config.model_dump(exclude_unset=True), state.settings, "config")


def stateless(body: RunCreate) -> tuple[str, RunCreate, bool]:
    """A new thread for the run, the request that creates it, and whether it is temporary."""
    request = body.model_copy(update={"if_not_exists": "create"})
    return str(uuid.uuid4()), request, body.on_completion != "keep"


async def submit_batch(
    state: AppState,
    owner: str | None,
    payloads: list[BatchRunCreate],
    thread_id: str | None = None,
) -> list[dict[str, Any]]:
    """Background runs, each on its `thread_id` (else `thread_id`, else a new thread),
    all checked, their threads included, before the first is accepted."""
    items = [
        (
            item.thread_id or thread_id,
            RunCreate.model_validate(item.model_dump(exclude_unset=True, exclude={"thread_id"})),
        )
        for item in payloads
    ]
    for target, body in items:
        check_run_request(body, state)
        state.runs.check(body)
        await state.runs.assistants.get(body.assistant_id, owner)
        if target is not None:
            await state.runs.thread_for(target, body, owner)
    accepted = []
    for target, body in items:
        if target is None:
            new_thread, request, temporary = stateless(body)
            run = await state.runs.submit(new_thread, request, owner, temporary=temporary)
        else:
            run = await state.runs.submit(target, body, owner)
        accepted.append(run_body(run))
    return accepted


def run_location(run_thread_id: str, run_id: str) -> str:
    return f"/threads/{run_thread_id}/runs/{run_id}"


def run_body(run: RunRecord) -> dict[str, Any]:
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


def stream_response(execution: RunExecution) -> EventSourceResponse:
    """A run's events as SSE, each with its id: `metadata` first, then the requested
    modes, `end` last. A resumable stream says where to pick it up (`Location`)."""

    async def events() -> AsyncIterator[ServerSentEvent]:
        async for seq, event, data in execution.events():
            yield ServerSentEvent(data=encode(data).decode(), event=event, id=str(seq))

    location = run_location(execution.prepared.thread_id, execution.run_id)
    headers = {"Content-Location": location}
    if execution.prepared.resumable:
        headers["Location"] = f"{location}/stream"
    return EventSourceResponse(events(), ping=15, headers=headers)


def replay_response(
    events: AsyncIterator[tuple[int, str, str]], wanted: set[str] | None
) -> EventSourceResponse:
    """A joined stream: the events after the client's last, only the modes it wants."""

    async def sse() -> AsyncIterator[ServerSentEvent]:
        async for seq, event, data in events:
            if wanted is None or event in _ALWAYS_SENT or event_mode(event) in wanted:
                yield ServerSentEvent(data=data, event=event, id=str(seq))

    return EventSourceResponse(sse(), ping=15)


# Sent to a joiner whatever modes it asked for.
_ALWAYS_SENT = ("metadata", "end", "error")


async def thread_values(state: AppState, thread_id: str) -> dict[str, Any]:
    """What a joined run answers: the thread's values, with its pending interrupts."""
    snapshot = await state.graph.aget_state(thread_config(thread_id))
    values = dict(snapshot.values) if isinstance(snapshot.values, dict) else {}
    if snapshot.interrupts:
        values["__interrupt__"] = list(snapshot.interrupts)
    return values
