"""The agent's customer memory on langgraph's in-memory store: one profile per contact,
each booking counted once, read only when a message gives a contact, kept per owner."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from service.agent.graph import build_graph
from service.agent.memory import (
    RETURNING_LINE,
    confirmed_bookings,
    customer_prompt,
    recall,
    remember,
    usual_service,
)
from service.agent.model import build_model
from service.agent.tools import build_tools
from service.bookings.store import BookingStore
from service.settings import Settings
from service.storage.errors import StorageUnavailableError
from service.storage.store import STORE_OWNER_KEY

ALICE = {"configurable": {STORE_OWNER_KEY: "alice"}}
NOBODY: dict = {"configurable": {}}


def booked(code: str, service: str, status: str = "confirmed") -> ToolMessage:
    payload = {
        "status": status,
        "confirmation_code": code,
        "service": service,
        "customer_name": "Ana",
        "contact": "Ana@Example.com",
    }
    return ToolMessage(json.dumps(payload), tool_call_id=code, name="book_appointment")


async def test_each_booking_counts_once_and_the_most_booked_service_is_the_usual() -> None:
    store = InMemoryStore()
    await remember(store, NOBODY, confirmed_bookings([booked("A1", "haircut")]))
    await remember(store, NOBODY, confirmed_bookings([booked("A1", "haircut")]))  # replayed
    await remember(store, NOBODY, confirmed_bookings([booked("B2", "manicure")]))
    await remember(store, NOBODY, confirmed_bookings([booked("C3", "manicure")]))
    await remember(store, NOBODY, confirmed_bookings([booked("D4", "haircut", "taken")]))
    profile = (await store.aget(("customers",), "ana@example.com")).value
    assert profile["services"] == {"haircut": 1, "manicure": 2}
    assert profile["codes"] == ["A1", "B2", "C3"]
    assert usual_service(profile) == "manicure"
    line = RETURNING_LINE.search(customer_prompt(profile))
    assert line and line.groupdict() == {
        "name": "Ana",
        "contact": "Ana@Example.com",
        "service": "manicure",
    }


async def test_recall_reads_only_for_a_new_contact_and_keeps_owners_apart() -> None:
    store = InMemoryStore()
    await remember(store, ALICE, confirmed_bookings([booked("A1", "haircut")]))
    assert await store.aget(("customers",), "ana@example.com") is None  # not in the shared space
    said = [HumanMessage("hi, it's ana@example.com")]
    found = await recall(store, ALICE, said, None)
    assert found and found["name"] == "Ana"
    assert await recall(store, NOBODY, said, None) is None  # another owner's customer
    later = [*said, AIMessage("Welcome back"), HumanMessage("tomorrow at 10")]
    assert await recall(None, ALICE, later, found) is found  # no contact: no read
    assert await recall(store, ALICE, [HumanMessage("I'm bob@example.com")], found) is None
    assert await recall(None, ALICE, said, None) is None  # a graph without a store


class BrokenStore(InMemoryStore):
    """A store whose database is down."""

    async def abatch(self, ops):
        raise StorageUnavailableError("the store is unavailable")


async def test_a_store_that_is_down_never_fails_a_turn(
    store: BookingStore, settings: Settings, now: Callable[[], dt.datetime]
) -> None:
    model = build_model(settings, now=now)
    graph = build_graph(model, build_tools(store, settings), settings, now=now).compile(
        checkpointer=InMemorySaver(), store=BrokenStore()
    )
    config = {"configurable": {"thread_id": "t"}}
    said = "haircut tomorrow at 10:00, I'm Ana, ana@example.com"
    values = await graph.ainvoke({"messages": [HumanMessage(said)]}, config)
    assert "confirmation code" in values["messages"][-1].text
    again = await graph.ainvoke({"messages": [HumanMessage("hi, it's ana@example.com")]}, config)
    assert again["messages"][-1].type == "ai"
