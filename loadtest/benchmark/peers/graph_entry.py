"""The booking graph as a peer runtime loads it: compiled, with no checkpointer.

LangGraph Server (`langgraph dev`) and Aegra import this file by path (their config's
`graphs.agent`) and supply their own checkpointer and store, so the graph is compiled
exactly as `service.app` compiles it, minus those two. It reads the same settings
(`LLM_PROVIDER=offline`, `APPOINTMENTS_DB_PATH`, ...) from the environment the peer
runs in, and books on the same SQLite appointments store as ours.

Only `service.*` is imported: the peer's virtualenv has this project on its path
(loadtest/benchmark/peers/venvs.py), not the benchmark's dependencies.
"""

from __future__ import annotations

from langgraph.graph.state import CompiledStateGraph

from service.agent.graph import build_graph
from service.agent.model import build_model
from service.agent.tools import build_tools
from service.bookings.store import open_booking_store
from service.settings import load_settings

ASSISTANT_ID = "agent"  # service.api.routes.assistants.ASSISTANT_ID, without importing the API


def make_graph() -> CompiledStateGraph:
    """Build the graph once per server process, its booking schema made first."""
    settings = load_settings()
    bookings = open_booking_store(settings)
    bookings.init_schema()  # what service.bootstrap does before the workers start
    model = build_model(settings)
    return build_graph(model, build_tools(bookings, settings), settings).compile(name=ASSISTANT_ID)


graph = make_graph()
