"""FastAPI dependencies: the per-worker objects built in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from langgraph.graph.state import CompiledStateGraph

from service.runs.introspection import GraphIntrospection
from service.runs.lifecycle import RunService
from service.schemas.validation import ID_PATTERN
from service.settings import Settings
from service.storage.base import Persistence


@dataclass
class AppState:
    """Everything one worker holds for its lifetime."""

    settings: Settings
    persistence: Persistence
    graph: CompiledStateGraph
    runs: RunService
    introspection: GraphIntrospection
    extra: dict[str, Any]


async def get_app_state(request: Request) -> AppState:
    """Async, as every dependency here: a plain function would run on a worker thread."""
    return request.app.state.service


State = Annotated[AppState, Depends(get_app_state)]
ThreadId = Annotated[
    str,
    Path(
        pattern=f"^{ID_PATTERN}$",
        max_length=128,
        description="Letters, digits, '-', '_', '.', ':'",
    ),
]
