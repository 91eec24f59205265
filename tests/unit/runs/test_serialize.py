"""LangGraph values and snapshots in the LangGraph Server API's JSON shapes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

from langgraph.types import Interrupt, PregelTask, StateSnapshot

from service.runs.serialize import checkpoint_ref, snapshot_to_state, to_jsonable


@dataclasses.dataclass
class Slot:
    day: dt.date
    free: bool


def test_plain_json_from_python_values() -> None:
    key = uuid.UUID(int=1)
    value = {
        1: (1.5, float("inf")),
        "slot": Slot(dt.date(2026, 12, 7), True),
        "id": key,
        "raw": b"\xff",
        "tags": {"a"},
        "other": object,
    }
    assert to_jsonable(value) == {
        "1": [1.5, None],
        "slot": {"day": "2026-12-07", "free": True},
        "id": str(key),
        "raw": "\ufffd",
        "tags": ["a"],
        "other": str(object),
    }


def test_checkpoint_ref_reads_the_configurable() -> None:
    assert checkpoint_ref(None) is None
    assert checkpoint_ref({"configurable": {"thread_id": "t", "checkpoint_id": "c"}}) == {
        "thread_id": "t",
        "checkpoint_ns": "",
        "checkpoint_id": "c",
        "checkpoint_map": None,
    }


def test_a_snapshot_becomes_a_thread_state() -> None:
    interrupt = Interrupt(value={"question": "book it?"}, id="i1")
    snapshot = StateSnapshot(
        values={"messages": []},
        next=("tools",),
        config={"configurable": {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": "2"}},
        metadata={"step": 2, "source": "loop"},
        created_at="2026-12-02T08:00:00+00:00",
        parent_config={"configurable": {"thread_id": "t", "checkpoint_id": "1"}},
        tasks=(PregelTask("task-1", "tools", ("tools",), interrupts=(interrupt,)),),
        interrupts=(interrupt,),
    )
    state = snapshot_to_state(snapshot)
    assert state["next"] == ["tools"]
    assert state["checkpoint"]["checkpoint_id"] == "2"
    assert state["parent_checkpoint"]["checkpoint_id"] == "1"
    assert state["metadata"] == {"step": 2, "source": "loop"}
    assert state["tasks"] == [
        {
            "id": "task-1",
            "name": "tools",
            "error": None,
            "interrupts": [{"value": {"question": "book it?"}, "id": "i1"}],
            "checkpoint": None,
            "state": None,
            "result": None,
        }
    ]
    assert state["interrupts"] == [{"value": {"question": "book it?"}, "id": "i1"}]


def test_an_interrupt_is_sent_without_its_response_schema() -> None:
    interrupt = Interrupt(value={"question": "book it?"}, id="i1")
    assert to_jsonable(interrupt) == {"value": {"question": "book it?"}, "id": "i1"}
