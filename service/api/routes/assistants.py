"""The one assistant this server serves, the booking graph as `agent`: its record, its
drawable graph, its schemas and subgraphs; search and count."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Response

from service.api.auth import Caller
from service.api.deps import State
from service.schemas.models import ERROR_RESPONSES, AssistantCount, AssistantSearch
from service.schemas.validation import quote

router = APIRouter(prefix="/assistants", tags=["assistants"], responses=ERROR_RESPONSES)

ASSISTANT_ID = "agent"
_CREATED = "2026-01-01T00:00:00+00:00"
# `xray` deeper than this draws nothing more in any graph worth drawing.
_MAX_XRAY = 10


def assistant_record() -> dict[str, Any]:
    return {
        "assistant_id": ASSISTANT_ID,
        "graph_id": ASSISTANT_ID,
        "name": ASSISTANT_ID,
        "description": "Books, lists and cancels appointments, in Spanish and English.",
        "config": {},
        "context": {},
        "metadata": {"created_by": "system"},
        "version": 1,
        "created_at": _CREATED,
        "updated_at": _CREATED,
    }


def known_assistant(assistant_id: str) -> bool:
    return assistant_id == ASSISTANT_ID


def _assistant(assistant_id: str) -> dict[str, Any]:
    if not known_assistant(assistant_id):
        raise HTTPException(404, f"Assistant {quote(assistant_id)} not found")
    return assistant_record()


def _matching(body: AssistantCount) -> list[dict[str, Any]]:
    record = assistant_record()
    matches = (
        body.graph_id in (None, record["graph_id"])
        and (body.name is None or body.name.lower() in record["name"].lower())
        and all(record["metadata"].get(k) == v for k, v in body.metadata.items())
    )
    return [record] if matches else []


@router.get("/{assistant_id}")
async def get_assistant(assistant_id: str, _: Caller) -> dict[str, Any]:
    return _assistant(assistant_id)


@router.get("/{assistant_id}/graph")
async def get_assistant_graph(
    assistant_id: str,
    state: State,
    _: Caller,
    xray: Annotated[str, Query(max_length=5, description="true, false or a depth")] = "false",
) -> dict[str, Any]:
    """The graph's nodes and edges, as LangGraph draws it."""
    _assistant(assistant_id)
    return state.introspection.drawing(_xray(xray))


@router.get("/{assistant_id}/schemas")
async def get_assistant_schemas(assistant_id: str, state: State, _: Caller) -> dict[str, Any]:
    """Input, output, state, config and context JSON schemas."""
    _assistant(assistant_id)
    return state.introspection.schemas()


@router.get("/{assistant_id}/subgraphs")
async def get_assistant_subgraphs(
    assistant_id: str, state: State, _: Caller, recurse: bool = False
) -> dict[str, Any]:
    _assistant(assistant_id)
    return state.introspection.subgraphs(None, recurse)


@router.get("/{assistant_id}/subgraphs/{namespace}")
async def get_assistant_subgraphs_in(
    assistant_id: str,
    namespace: Annotated[str, Path(max_length=256)],
    state: State,
    _: Caller,
    recurse: bool = False,
) -> dict[str, Any]:
    _assistant(assistant_id)
    return state.introspection.subgraphs(namespace, recurse)


@router.post("/search")
async def search_assistants(
    body: AssistantSearch, response: Response, _: Caller
) -> list[dict[str, Any]]:
    """Assistants by graph, name (a case-insensitive substring) and metadata; when more
    follow, `X-Pagination-Next` is the next page's offset."""
    found = _matching(body)
    page = found[body.offset : body.offset + body.limit]
    if body.offset + body.limit < len(found):
        response.headers["X-Pagination-Next"] = str(body.offset + body.limit)
    if body.select:
        return [{key: record[key] for key in body.select} for record in page]
    return page


@router.post("/count")
async def count_assistants(body: AssistantCount, _: Caller) -> int:
    return len(_matching(body))


def _xray(raw: str) -> bool | int:
    text = raw.strip().lower()
    if text in ("true", "false"):
        return text == "true"
    if text.isdigit() and int(text) <= _MAX_XRAY:
        return int(text) or False
    raise HTTPException(422, f"xray must be true, false or a depth from 0 to {_MAX_XRAY}")
