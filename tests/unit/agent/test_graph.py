"""The graph: tool errors become ToolMessages, retries are bounded, then the model explains."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.checkpoint.memory import InMemorySaver
from prometheus_client import REGISTRY
from pydantic import Field

from service.agent.graph import (
    INTERRUPTED_TOOL_CALL,
    answer_dangling_tool_calls,
    build_graph,
)
from service.agent.tools import build_tools
from service.bookings.store import BookingStore
from service.settings import Settings
from tests.unit.conftest import Chat, make_settings

GOOD_ARGS = {
    "service": "haircut",
    "date": "2025-06-03",
    "time": "15:00",
    "customer_name": "Ana",
    "contact": "ana@example.com",
}
_ids = itertools.count()

Script = Callable[[list[BaseMessage], dict[str, Any]], AIMessage]


class ScriptedModel(BaseChatModel):
    """Answers with `script(prompt, kwargs)`, and keeps every prompt it saw."""

    script: Script
    prompts: list[list[BaseMessage]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        return self.bind(tools=[getattr(t, "name", t) for t in tools], **kwargs)

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        self.prompts.append(list(messages))
        return ChatResult(generations=[ChatGeneration(message=self.script(messages, kw))])


def book_call(**args: Any) -> AIMessage:
    call = {"name": "book_appointment", "args": {**GOOD_ARGS, **args}, "id": f"c{next(_ids)}"}
    return AIMessage("", tool_calls=[call])


def instruction(prompt: list[BaseMessage]) -> str:
    last = prompt[-1]
    return str(last.content) if isinstance(last, SystemMessage) else ""


def cooperative(prompt: list[BaseMessage], kwargs: dict[str, Any]) -> AIMessage:
    """Keeps sending a bad date until told to stop, then explains."""
    if kwargs.get("tool_choice") == "none" or "Stop calling tools" in instruction(prompt):
        return AIMessage("Lo siento, no pude reservar: la fecha no es válida.")
    return book_call(date="tomorrow")


def stubborn(prompt: list[BaseMessage], kwargs: dict[str, Any]) -> AIMessage:
    """Ignores every instruction and calls the tool again."""
    return book_call(date="tomorrow")


def learns(prompt: list[BaseMessage], kwargs: dict[str, Any]) -> AIMessage:
    """Fixes the arguments after one retry instruction, then summarises."""
    if isinstance(prompt[-1], ToolMessage) and prompt[-1].status != "error":
        return AIMessage("Booked.")
    if "Fix the arguments" in instruction(prompt):
        return book_call()
    return book_call(date="tomorrow")


def compile_with(model: BaseChatModel, store: BookingStore, settings: Settings) -> Any:
    builder = build_graph(model, build_tools(store, settings), settings, now=store.now)
    return builder.compile(checkpointer=InMemorySaver())


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_bad_argument_is_retried_a_bounded_number_of_times_then_explained(
    store: BookingStore, settings: Settings
) -> None:
    model = ScriptedModel(script=cooperative)
    graph = compile_with(model, store, settings)
    errors_before = counter(
        "booking_agent_tool_calls_total", tool="book_appointment", outcome="error"
    )
    calls_before = counter("booking_agent_llm_call_seconds_count", provider="offline")

    reply = await Chat(graph).say("book me")

    assert reply.startswith("Lo siento")
    state = (await graph.aget_state({"configurable": {"thread_id": "thread-1"}})).values
    failures = [m for m in state["messages"] if isinstance(m, ToolMessage)]
    assert len(failures) == settings.tool_max_retries + 1
    assert all(m.status == "error" and "Invalid date" in str(m.content) for m in failures)
    assert state["tool_retries"] == settings.tool_max_retries + 1
    assert state["retry_instruction"] is None
    # Instructions reach the prompt only, never the stored conversation.
    assert not any(isinstance(m, SystemMessage) for m in state["messages"])
    retry_prompts = [instruction(p) for p in model.prompts[1:]]
    assert [text.startswith("The last tool call failed") for text in retry_prompts] == [
        True,
        True,
        False,
    ]
    assert "Stop calling tools" in retry_prompts[-1]
    assert "Today is Monday 2025-06-02" in str(model.prompts[0][0].content)
    assert (
        counter("booking_agent_tool_calls_total", tool="book_appointment", outcome="error")
        == errors_before + 3
    )
    assert counter("booking_agent_llm_call_seconds_count", provider="offline") == calls_before + 4


async def test_a_model_that_never_stops_calling_tools_still_ends(
    store: BookingStore, settings: Settings
) -> None:
    graph = compile_with(ScriptedModel(script=stubborn), store, settings)
    reply = await Chat(graph).say("book me")
    assert reply.startswith("Sorry, I couldn't complete that request")
    assert "Invalid date" in reply


async def test_retry_with_fixed_arguments_books(store: BookingStore, settings: Settings) -> None:
    graph = compile_with(ScriptedModel(script=learns), store, settings)
    chat = Chat(graph)
    assert await chat.say("book me") == "Booked."
    state = await chat.state()
    assert state["tool_retries"] == 1 and state["retry_instruction"] is None
    assert [a.customer_name for a in store.appointments_for("ana@example.com")] == ["Ana"]


async def test_each_turn_gets_a_fresh_retry_budget(store: BookingStore, settings: Settings) -> None:
    model = ScriptedModel(script=cooperative)
    chat = Chat(compile_with(model, store, settings))
    await chat.say("book me")
    await chat.say("again please")
    state = await chat.state()
    failures = [m for m in state["messages"] if isinstance(m, ToolMessage)]
    assert len(failures) == 2 * (settings.tool_max_retries + 1)
    assert state["tool_retries"] == settings.tool_max_retries + 1


async def test_zero_retries_explains_after_the_first_failure(store: BookingStore) -> None:
    settings = make_settings(tool_max_retries=0)
    model = ScriptedModel(script=cooperative)
    chat = Chat(compile_with(model, store, settings))
    assert (await chat.say("book me")).startswith("Lo siento")
    failures = [m for m in (await chat.state())["messages"] if isinstance(m, ToolMessage)]
    assert len(failures) == 1


async def test_schema_errors_are_tool_errors_too(store: BookingStore, settings: Settings) -> None:
    def missing_contact(prompt: list[BaseMessage], kwargs: dict[str, Any]) -> AIMessage:
        if isinstance(prompt[-1], SystemMessage):
            return AIMessage("What is your email or phone number?")
        args = {k: v for k, v in GOOD_ARGS.items() if k != "contact"}
        return AIMessage("", tool_calls=[{"name": "book_appointment", "args": args, "id": "x1"}])

    chat = Chat(compile_with(ScriptedModel(script=missing_contact), store, settings))
    assert await chat.say("book me") == "What is your email or phone number?"
    [failure] = [m for m in (await chat.state())["messages"] if isinstance(m, ToolMessage)]
    assert failure.status == "error" and "contact" in str(failure.content)


async def test_offline_graph_accepts_plain_dict_input(graph: Any) -> None:
    state = await graph.ainvoke(
        {"messages": [{"role": "user", "content": "hola"}]},
        {"configurable": {"thread_id": "dict-input"}},
    )
    assert isinstance(state["messages"][0], HumanMessage)
    assert state["tool_retries"] == 0


def test_dangling_tool_calls_get_a_result_in_the_prompt() -> None:
    call = {"name": "list_services", "args": {}, "id": "lost"}
    history: list[BaseMessage] = [
        HumanMessage("services?"),
        AIMessage("", tool_calls=[call]),
        HumanMessage("hello?"),
    ]
    fixed = answer_dangling_tool_calls(history)
    assert [type(m).__name__ for m in fixed] == [
        "HumanMessage",
        "AIMessage",
        "ToolMessage",
        "HumanMessage",
    ]
    assert fixed[2].content == INTERRUPTED_TOOL_CALL and fixed[2].tool_call_id == "lost"
    assert answer_dangling_tool_calls(fixed) == fixed


def test_builder_is_uncompiled(store: BookingStore, settings: Settings) -> None:
    builder = build_graph(ScriptedModel(script=stubborn), build_tools(store, settings), settings)
    assert set(builder.nodes) == {"agent", "tools", "retry_handler", "approval"}
    assert callable(builder.compile)
