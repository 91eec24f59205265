"""The model sees a bounded window that never starts with an orphaned tool result."""

from __future__ import annotations

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from service.agent.graph import context_window


def conversation(turns: int) -> list:
    messages = []
    for i in range(turns):
        messages += [
            HumanMessage(f"q{i}"),
            AIMessage("", tool_calls=[{"id": f"c{i}", "name": "list_services", "args": {}}]),
            ToolMessage("{}", tool_call_id=f"c{i}"),
            AIMessage(f"a{i}"),
        ]
    return messages


def test_short_conversations_are_untouched() -> None:
    messages = conversation(3)
    assert context_window(messages, 40) == messages


def test_window_is_bounded_and_starts_at_a_user_message() -> None:
    messages = conversation(100)
    window = context_window(messages, 10)
    assert len(window) <= 10
    assert isinstance(window[0], HumanMessage)
    assert window == messages[-len(window) :]
    answered = {m.tool_call_id for m in window if isinstance(m, ToolMessage)}
    calls = {c["id"] for m in window if isinstance(m, AIMessage) for c in m.tool_calls}
    assert answered == calls
