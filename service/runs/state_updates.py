"""Editing a thread's state from outside a run: `update_state` and create-time supersteps.

An edit is a write to the thread, so it takes the thread in the guard like a run and
waits its turn behind one in flight; everything it writes is checked first, so a
refused edit writes nothing.
"""

from __future__ import annotations

from typing import Any

from langgraph.errors import InvalidUpdateError
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import StateUpdate

from service.runs.commands import CommandError, check_node, check_update
from service.runs.serialize import checkpoint_ref
from service.schemas.models import Superstep, ThreadStateUpdate
from service.settings import Settings
from service.storage.base import Persistence
from service.storage.errors import CheckpointNotFoundError, ThreadNotFoundError


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
        if await persistence.get_thread(thread_id) is None:  # deleted while this waited
            raise ThreadNotFoundError(thread_id)
        if start and (await graph.aget_state(config)).metadata is None:
            raise CheckpointNotFoundError(thread_id, start)
        try:
            written = await graph.aupdate_state(config, body.values, as_node=body.as_node)
        except InvalidUpdateError as exc:
            raise CommandError(f"the update cannot apply: {str(exc)[:300]}") from None
    return {"checkpoint": checkpoint_ref(written)}


def check_supersteps(graph: CompiledStateGraph, steps: list[Superstep], settings: Settings) -> None:
    """Before the thread exists: every update names the state's keys and a real node."""
    for i, step in enumerate(steps):
        for j, update in enumerate(step.updates):
            where = f"supersteps[{i}].updates[{j}]"
            check_update(graph, (update.values or {}).items(), settings, f"{where}.values")
            check_node(graph, update.as_node, f"{where}.as_node")


async def apply_supersteps(
    graph: CompiledStateGraph, thread_id: str, steps: list[Superstep]
) -> None:
    """Write the supersteps as the new thread's first checkpoints (one per superstep)."""
    config = {"configurable": {"thread_id": thread_id}}
    batches = [[StateUpdate(u.values, u.as_node) for u in step.updates] for step in steps]
    try:
        await graph.abulk_update_state(config, batches)
    except InvalidUpdateError as exc:
        raise CommandError(f"the supersteps cannot apply: {str(exc)[:300]}") from None
