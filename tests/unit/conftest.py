"""Fixtures for the agent's unit tests: a fixed clock, a fresh store, the compiled graph."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from service.bookings.store import BookingStore
from service.settings import Settings

if TYPE_CHECKING:
    from service.agent.offline.model import OfflineChatModel

# LangChain and LangGraph are imported inside the fixtures that need them: the
# cross-process test spawns workers that import this module, and they should start fast.

MADRID = zoneinfo.ZoneInfo("Europe/Madrid")
# Monday 2 June 2025, 10:00 in Madrid: "mañana" is an open Tuesday.
MONDAY_10AM = dt.datetime(2025, 6, 2, 10, 0, tzinfo=MADRID)


def make_settings(**values: Any) -> Settings:
    """Defaults from the code only: no `.env`, offline model."""
    values.setdefault("llm_provider", "offline")
    return Settings(_env_file=None, **values)


def fixed_clock(moment: dt.datetime) -> Callable[[], dt.datetime]:
    return lambda: moment


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
def now() -> Callable[[], dt.datetime]:
    return fixed_clock(MONDAY_10AM)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "appointments.db"


@pytest.fixture
def store(
    db_path: Path, settings: Settings, now: Callable[[], dt.datetime]
) -> Iterator[BookingStore]:
    bookings = BookingStore(db_path, settings, now=now)
    bookings.init_schema()
    yield bookings
    bookings.close()


@pytest.fixture
def offline_model(settings: Settings, now: Callable[[], dt.datetime]) -> OfflineChatModel:
    from service.agent.offline.model import OfflineChatModel

    return OfflineChatModel(settings=settings, now=now)


@pytest.fixture
def graph(
    store: BookingStore,
    settings: Settings,
    offline_model: OfflineChatModel,
    now: Callable[[], dt.datetime],
) -> Any:
    from langgraph.checkpoint.memory import InMemorySaver

    from service.agent.graph import build_graph
    from service.agent.tools import build_tools

    builder = build_graph(offline_model, build_tools(store, settings), settings, now=now)
    return builder.compile(checkpointer=InMemorySaver())


class Chat:
    """One conversation thread on the compiled graph."""

    def __init__(self, graph: Any, thread_id: str = "thread-1") -> None:
        self.graph = graph
        self.config = {"configurable": {"thread_id": thread_id}}

    async def say(self, text: str) -> str:
        state = await self.graph.ainvoke(
            {"messages": [{"role": "user", "content": text}]}, self.config
        )
        last = state["messages"][-1]
        assert last.type == "ai" and not last.tool_calls
        return str(last.content)

    async def state(self) -> dict[str, Any]:
        return (await self.graph.aget_state(self.config)).values


@pytest.fixture
def chat(graph: Any) -> Chat:
    return Chat(graph)
