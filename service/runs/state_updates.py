"""Editing a thread's state from outside a run: `update_state` and create-time supersteps.

An edit is a write to the thread, so it takes the thread in the guard like a run and
waits its turn behind one in flight; everything it writes is checked first, so a
refused edit writes nothing.
"""

from __future__ import annotations

from typing import Any

from langgraph.errors import InvalidUpdateError
from langgraph.graph.state import CompiledStateGraph

from service.runs.commands import CommandError, check_node, check_update
from service.runs.serialize import checkpoint_ref
from service.schemas.models import ThreadStateUpdate
from service.settings import Settings
from service.storage.base import Persistence
from service.storage.errors import CheckpointNotFoundError


async def update_thread_state(
    graph: CompiledStateGraph,
    persistence: Persistence,
    settings: Settings,
    thread_id: str,
    body: ThreadStateUpdate,
) -> dict[str, Any]:
    """Apply `values` as if `as_node` wrote them (from `checkpoint`, a fork); the new head."""
    check_update(graph, (body.values or {}).items(), settings, "values")
    check_node(graph, body.as_node, "as_node")
    configurable: dict[str, Any] = {"thread_id": thread_id}
    start = body.start_checkpoint()
    if start:
        configurable.update(checkpoint_id=start, checkpoint_ns=body.checkpoint_ns())
    config = {"configurable": configurable}
    async with persistence.guard.hold(thread_id, wait=True, timeout_s=settings.enqueue_timeout_s):
        if start and (await graph.aget_state(config)).metadata is None:
            raise CheckpointNotFoundError(thread_id, start)
        try:
            written = await graph.aupdate_state(config, body.values, as_node=body.as_node)
        except InvalidUpdateError as exc:
            raise CommandError(f"the update cannot apply: {str(exc)[:300]}") from None
    return {"checkpoint": checkpoint_ref(written)}
