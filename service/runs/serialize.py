"""Turning LangGraph objects into the JSON shapes of the LangGraph Server API."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import uuid
from typing import Any

from langgraph.types import Interrupt, StateSnapshot
from pydantic import BaseModel


def interrupt_json(item: Interrupt) -> dict[str, Any]:
    """An interrupt as LangGraph Server sends it: its value and id (no response schema)."""
    return {"value": item.value, "id": item.id}


def to_jsonable(value: Any) -> Any:
    """Messages, interrupts and other LangGraph values as plain JSON data."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | int | bool):
        return value
    if isinstance(value, BaseModel):
        return to_jsonable(value.model_dump())
    if isinstance(value, Interrupt):
        return to_jsonable(interrupt_json(value))
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def checkpoint_ref(config: dict[str, Any] | None) -> dict[str, Any] | None:
    if not config:
        return None
    configurable = config.get("configurable", {})
    return {
        "thread_id": configurable.get("thread_id"),
        "checkpoint_ns": configurable.get("checkpoint_ns", ""),
        "checkpoint_id": configurable.get("checkpoint_id"),
        "checkpoint_map": configurable.get("checkpoint_map"),
    }


def snapshot_to_state(snapshot: StateSnapshot) -> dict[str, Any]:
    """A `StateSnapshot` as the API's ThreadState."""
    tasks = [
        {
            "id": task.id,
            "name": task.name,
            "error": str(task.error) if task.error else None,
            "interrupts": to_jsonable(list(task.interrupts)),
            "checkpoint": None,
            "state": None,
            "result": to_jsonable(task.result),
        }
        for task in snapshot.tasks
    ]
    return {
        "values": snapshot.values,
        "next": list(snapshot.next),
        "checkpoint": checkpoint_ref(snapshot.config),
        "metadata": to_jsonable(snapshot.metadata or {}),
        "created_at": snapshot.created_at,
        "parent_checkpoint": checkpoint_ref(snapshot.parent_config),
        "tasks": tasks,
        "interrupts": to_jsonable(list(snapshot.interrupts)),
    }
