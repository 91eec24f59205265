"""A thread's state edited from outside a run: `update_state` (human in the loop, time travel)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from service.api.auth import Caller
from service.api.deps import State, ThreadId
from service.api.routes.threads import owned_thread
from service.runs.state_updates import update_thread_state
from service.schemas.models import ERROR_RESPONSES, ThreadStateUpdate

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
