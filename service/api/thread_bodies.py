"""Threads as the API shows them: status, body, owner rules, the state read behind them.

Shared by the thread and state routers, so a thread reads the same from every endpoint.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from langgraph.types import StateSnapshot

from service.api.auth import OWNER_KEY, Principal
from service.api.deps import AppState
from service.runs.serialize import to_jsonable
from service.storage.base import ThreadRecord
from service.storage.errors import ThreadNotFoundError
from service.storage.records import iso_utc, parse_iso


def thread_config(thread_id: str, checkpoint_id: str | None = None) -> dict[str, Any]:
    configurable: dict[str, Any] = {"thread_id": thread_id}
    if checkpoint_id:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def thread_status(state: AppState, record: ThreadRecord, interrupted: bool) -> str:
    if state.persistence.guard.is_busy(record.thread_id):
        return "busy"
    if record.status == "error":
        return "error"
    return "interrupted" if interrupted or record.status == "interrupted" else "idle"


def ttl_body(record: ThreadRecord) -> dict[str, Any]:
    """The thread's own TTL, and when it runs out unless the thread is active again."""
    if record.ttl_minutes is None:
        return {}
    updated = parse_iso(record.updated_at)
    expires = updated + dt.timedelta(minutes=record.ttl_minutes)
    return {
        "ttl": {"strategy": "delete", "ttl": record.ttl_minutes, "expires_at": iso_utc(expires)}
    }


def thread_body(
    record: ThreadRecord, status: str, values: Any = None, interrupts: Any = None
) -> dict[str, Any]:
    return {
        "thread_id": record.thread_id,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "metadata": record.metadata,
        "status": status,
        "values": values,
        "interrupts": interrupts or {},
        "error": record.error,
        **ttl_body(record),
    }


async def owned_thread(state: AppState, caller: Principal, thread_id: str) -> ThreadRecord:
    """The caller's thread. Another owner's thread is reported as missing (404), never 403."""
    record = await state.persistence.get_thread(thread_id)
    if record is None or not caller.owns(record.metadata):
        raise ThreadNotFoundError(thread_id)
    return record


def owner_metadata(caller: Principal, metadata: dict[str, Any]) -> dict[str, Any]:
    if caller.owner is None:
        return dict(metadata)
    return {**metadata, OWNER_KEY: caller.owner}


async def state_body(
    state: AppState, record: ThreadRecord, snapshot: StateSnapshot | None = None
) -> dict[str, Any]:
    """The thread with its latest values and pending interrupts (one state read, unless
    the caller read it already)."""
    if snapshot is None:
        snapshot = await state.graph.aget_state(thread_config(record.thread_id))
    interrupts = {task.id: to_jsonable(list(task.interrupts)) for task in snapshot.tasks}
    interrupts = {key: value for key, value in interrupts.items() if value}
    status = thread_status(state, record, bool(interrupts))
    return thread_body(record, status, snapshot.values, interrupts)
