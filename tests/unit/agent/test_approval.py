"""BOOKING_CONFIRMATION=interrupt: a booking waits for a person; approve, edit or reject."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from service.agent.graph import build_graph
from service.agent.offline.model import OfflineChatModel
from service.agent.tools import build_tools
from service.bookings.store import BookingStore
from service.schemas.approval import ApprovalAnswerError, as_request, check_answer
from tests.unit.conftest import make_settings

ASK = "I'd like a haircut tomorrow at 10, my name is Bob, bob@example.com"


@pytest.fixture
def approval_graph(store: BookingStore, now: Callable[[], dt.datetime]) -> Any:
    settings = make_settings(booking_confirmation="interrupt")
    model = OfflineChatModel(settings=settings, now=now)
    builder = build_graph(model, build_tools(store, settings), settings, now=now)
    return builder.compile(checkpointer=InMemorySaver())


CONFIG = {"configurable": {"thread_id": "t"}}


async def ask(graph: Any) -> dict[str, Any]:
    result = await graph.ainvoke({"messages": [{"role": "user", "content": ASK}]}, CONFIG)
    [pending] = result["__interrupt__"]
    return pending.value


async def test_a_booking_waits_for_approval_then_books(
    approval_graph: Any, store: BookingStore
) -> None:
    request = await ask(approval_graph)
    [action] = request["action_requests"]
    assert action["name"] == "book_appointment"
    assert action["args"]["time"] == "10:00" and action["args"]["customer_name"] == "Bob"
    assert "haircut" in action["description"] and "Bob" in action["description"]
    assert request["review_configs"] == [
        {"action_name": "book_appointment", "allowed_decisions": ["approve", "edit", "reject"]}
    ]
    assert store.appointments_for("bob@example.com") == []  # nothing before the decision
    state = await approval_graph.aget_state(CONFIG)
    assert state.next == ("approval",)

    result = await approval_graph.ainvoke(
        Command(resume={"decisions": [{"type": "approve"}]}), CONFIG
    )
    assert "__interrupt__" not in result
    assert result["messages"][-1].content.startswith("All set!")
    [booked] = store.appointments_for("bob@example.com")
    assert booked.starts_at.strftime("%H:%M") == "10:00"


async def test_edit_books_the_edited_slot(approval_graph: Any, store: BookingStore) -> None:
    request = await ask(approval_graph)
    args = {**request["action_requests"][0]["args"], "time": "11:30"}
    edit = {"type": "edit", "edited_action": {"name": "book_appointment", "args": args}}
    result = await approval_graph.ainvoke(Command(resume={"decisions": [edit]}), CONFIG)
    assert "11:30" in result["messages"][-1].content
    [booked] = store.appointments_for("bob@example.com")
    assert booked.starts_at.strftime("%H:%M") == "11:30"
    # The stored tool call is the edited one, so the history says what was booked.
    ai_calls = [m for m in result["messages"] if m.type == "ai" and m.tool_calls]
    assert ai_calls[-1].tool_calls[0]["args"]["time"] == "11:30"


async def test_reject_books_nothing_and_the_agent_says_so(
    approval_graph: Any, store: BookingStore
) -> None:
    await ask(approval_graph)
    reject = {"type": "reject", "message": "wrong day"}
    result = await approval_graph.ainvoke(Command(resume={"decisions": [reject]}), CONFIG)
    reply = result["messages"][-1].content
    assert "not booked" in reply and "wrong day" in reply
    assert store.appointments_for("bob@example.com") == []
    # Every tool call has its answer: the history stays valid for any provider.
    tool_answers = {m.tool_call_id for m in result["messages"] if m.type == "tool"}
    calls = {c["id"] for m in result["messages"] if m.type == "ai" for c in m.tool_calls}
    assert calls <= tool_answers


async def test_without_the_setting_a_booking_is_immediate(graph: Any, store: BookingStore) -> None:
    result = await graph.ainvoke({"messages": [{"role": "user", "content": ASK}]}, CONFIG)
    assert "__interrupt__" not in result and store.appointments_for("bob@example.com")


REQUEST = {
    "action_requests": [{"name": "book_appointment", "args": {}, "description": "d"}],
    "review_configs": [{"action_name": "book_appointment", "allowed_decisions": ["approve"]}],
}


@pytest.mark.parametrize(
    ("answer", "complaint"),
    [
        ("yes", "decisions"),
        ({"decisions": []}, "decisions"),
        ({"decisions": [{"type": "approve"}, {"type": "approve"}]}, "has 2 decision"),
        ({"decisions": [{"type": "maybe"}]}, "decisions.0"),
        ({"decisions": [{"type": "reject"}]}, "not allowed"),
        ({"decisions": [{"type": "approve", "extra": 1}]}, "extra"),
    ],
)
def test_malformed_answers_are_refused(answer: Any, complaint: str) -> None:
    request = as_request(REQUEST)
    assert request is not None
    with pytest.raises(ApprovalAnswerError, match=complaint):
        check_answer(request, answer)


def test_an_edit_must_keep_the_action() -> None:
    request = as_request(
        {
            **REQUEST,
            "review_configs": [{"action_name": "book_appointment", "allowed_decisions": ["edit"]}],
        }
    )
    assert request is not None
    edit = {"type": "edit", "edited_action": {"name": "cancel_appointment", "args": {}}}
    with pytest.raises(ApprovalAnswerError, match="keep the action"):
        check_answer(request, {"decisions": [edit]})
    assert as_request({"question": "other interrupt"}) is None


async def test_a_run_can_ask_for_approval_through_its_config(
    graph: Any, store: BookingStore
) -> None:
    config = {"configurable": {"thread_id": "asks", "booking_confirmation": "interrupt"}}
    result = await graph.ainvoke({"messages": [{"role": "user", "content": ASK}]}, config)
    assert result["__interrupt__"] and store.appointments_for("bob@example.com") == []


async def test_a_run_cannot_skip_a_required_approval(
    approval_graph: Any, store: BookingStore
) -> None:
    config = {"configurable": {"thread_id": "skips", "booking_confirmation": "none"}}
    result = await approval_graph.ainvoke({"messages": [{"role": "user", "content": ASK}]}, config)
    assert result["__interrupt__"] and store.appointments_for("bob@example.com") == []
