"""A real LangGraph graph with the `add_messages` reducer, as the booking agent's state
is, for checkpointer tests: each turn appends the user's message and a reply."""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def reply(state: State) -> dict[str, Any]:
    return {"messages": [AIMessage(f"reply {len(state['messages'])} " + "x" * 200)]}


def compiled(saver: BaseCheckpointSaver) -> Any:
    graph = StateGraph(State)
    graph.add_node("reply", reply)
    graph.add_edge(START, "reply")
    return graph.compile(checkpointer=saver)


def contents(messages: list[Any]) -> list[str]:
    return [m.content for m in messages]
