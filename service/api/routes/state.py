"""A thread's state: now, at any kept checkpoint (time travel), its history, and edits."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from service.api.auth import Caller
from service.api.deps import AppState, State, ThreadId
from service.api.encoding import json_response
from service.api.thread_bodies import owned_thread, thread_config
from service.runs.serialize import snapshot_to_state
from service.runs.state_updates import update_thread_state
from service.schemas.models import (
    ERROR_RESPONSES,
    HistoryRequest,
    StateAtCheckpoint,
    ThreadStateUpdate,
)
from service.storage.errors import CheckpointNotFoundError

router = APIRouter(prefix="/threads", tags=["threads"], responses=ERROR_RESPONSES)


@router.post("/{thread_id}/state", operation_id="update_thread_state")
async def update_state(
    thread_id: ThreadId, body: ThreadStateUpdate, state: State, caller: Caller
) -> dict[str, Any]:
    """Write `values` as if `as_node` had run; from `checkpoint`, a new branch. The new head."""
    await owned_thread(state, caller, thread_id)
    return await update_thread_state(
        state.graph, state.persistence, state.settings, thread_id, body
    )


@router.get("/{thread_id}/state", operation_id="get_thread_state", response_model=dict[str, Any])
async def get_state(thread_id: ThreadId, state: State, caller: Caller) -> Response:
    await owned_thread(state, caller, thread_id)
    return json_response(snapshot_to_state(await state.graph.aget_state(thread_config(thread_id))))


async def state_at(state: AppState, thread_id: str, checkpoint_id: str, ns: str = "") -> Response:
    """The thread's state at one of its checkpoints (time travel); 404 if it has none such."""
    config = thread_config(thread_id, checkpoint_id)
    if ns:
        config["configurable"]["checkpoint_ns"] = ns
    snapshot = await state.graph.aget_state(config)
    if snapshot.metadata is None:  # LangGraph's answer for a checkpoint it cannot find
        raise CheckpointNotFoundError(thread_id, checkpoint_id)
    return json_response(snapshot_to_state(snapshot))


@router.get(
    "/{thread_id}/state/{checkpoint_id}",
    operation_id="get_thread_state_at_checkpoint",
    response_model=dict[str, Any],
)
async def get_state_at_checkpoint(
    thread_id: ThreadId, checkpoint_id: ThreadId, state: State, caller: Caller
) -> Response:
    await owned_thread(state, caller, thread_id)
    return await state_at(state, thread_id, checkpoint_id)


@router.post(
    "/{thread_id}/state/checkpoint",
    operation_id="post_thread_state_at_checkpoint",
    response_model=dict[str, Any],
)
async def post_state_at_checkpoint(
    thread_id: ThreadId, body: StateAtCheckpoint, state: State, caller: Caller
) -> Response:
    await owned_thread(state, caller, thread_id)
    if not body.checkpoint.checkpoint_id:
        return json_response(
            snapshot_to_state(await state.graph.aget_state(thread_config(thread_id)))
        )
    ns = body.checkpoint.checkpoint_ns or ""
    return await state_at(state, thread_id, body.checkpoint.checkpoint_id, ns)


@router.post(
    "/{thread_id}/history",
    operation_id="get_thread_history",
    response_model=list[dict[str, Any]],
)
async def get_history(
    thread_id: ThreadId, body: HistoryRequest, state: State, caller: Caller
) -> Response:
    await owned_thread(state, caller, thread_id)
    before = body.before_id()
    # `checkpoint` narrows the listing to that checkpoint, as LangGraph Server's does.
    at = body.checkpoint.checkpoint_id if body.checkpoint else None
    history = state.graph.aget_state_history(
        thread_config(thread_id, at),
        limit=body.limit,
        before=thread_config(thread_id, before) if before else None,
        filter=body.metadata or None,
    )
    states = [snapshot_to_state(snapshot) async for snapshot in history]
    if body.select:
        states = [{key: item[key] for key in body.select} for item in states]
    return json_response(states)
