"""Assistants: the graph's own (`agent`) and stored, versioned configurations of it;
the graph's drawing, schemas and subgraphs; search and count."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Response

from service.api.auth import Caller
from service.api.deps import AppState, State
from service.api.encoding import json_response
from service.api.limits import check_metadata
from service.runs.assistants import AssistantService
from service.schemas.assistants import (
    AssistantCount,
    AssistantCreate,
    AssistantLatest,
    AssistantPatch,
    AssistantSearch,
    AssistantVersionSearch,
)
from service.schemas.models import ERROR_RESPONSES
from service.storage.assistant_records import AssistantRecord
from service.storage.base import metadata_matches

router = APIRouter(prefix="/assistants", tags=["assistants"], responses=ERROR_RESPONSES)

ASSISTANT_ID = "agent"
# `xray` deeper than this draws nothing more in any graph worth drawing.
_MAX_XRAY = 10
AssistantId = Annotated[str, Path(min_length=1, max_length=128)]


def assistant_body(record: AssistantRecord) -> dict[str, Any]:
    """The LangGraph Server API's Assistant."""
    return {
        "assistant_id": record.assistant_id,
        "graph_id": record.graph_id,
        "name": record.name,
        "description": record.description,
        "config": record.config,
        "context": record.context,
        "metadata": record.metadata,
        "version": record.version,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


def version_body(record: AssistantRecord) -> dict[str, Any]:
    """The LangGraph Server API's AssistantVersion."""
    body = assistant_body(record)
    del body["updated_at"]
    return body


def _assistants(state: AppState) -> AssistantService:
    return state.runs.assistants


def _check_bodies(body: AssistantCreate | AssistantPatch, state: AppState) -> None:
    check_metadata(body.metadata, state.settings, "assistant metadata")
    check_metadata(body.context, state.settings, "assistant context")
    if body.config is not None:
        check_metadata(body.config.model_dump(exclude_unset=True), state.settings, "config")


async def _matching(state: AppState, owner: str | None, body: AssistantCount) -> list[Any]:
    name = body.name.lower() if body.name else None
    return [
        record
        for record in await _assistants(state).all(owner)
        if body.graph_id in (None, record.graph_id)
        and (name is None or name in record.name.lower())
        and metadata_matches(record.metadata, body.metadata)
    ]


@router.post("", operation_id="create_assistant")
async def create_assistant(body: AssistantCreate, state: State, caller: Caller) -> Response:
    """A stored configuration of the graph (`config`, `context`), version 1."""
    _check_bodies(body, state)
    record = await _assistants(state).create(body, caller.owner)
    return json_response(assistant_body(record))


@router.get("/{assistant_id}", operation_id="get_assistant")
async def get_assistant(assistant_id: AssistantId, state: State, caller: Caller) -> Response:
    return json_response(assistant_body(await _assistants(state).get(assistant_id, caller.owner)))


@router.patch("/{assistant_id}", operation_id="update_assistant")
async def update_assistant(
    assistant_id: AssistantId, body: AssistantPatch, state: State, caller: Caller
) -> Response:
    """A new version, now in use: `metadata` merged, the fields sent replaced."""
    _check_bodies(body, state)
    record = await _assistants(state).update(assistant_id, body, caller.owner)
    return json_response(assistant_body(record))


@router.delete("/{assistant_id}", status_code=204, operation_id="delete_assistant")
async def delete_assistant(assistant_id: AssistantId, state: State, caller: Caller) -> Response:
    """The assistant and its versions; threads that ran with it keep their history."""
    await _assistants(state).delete(assistant_id, caller.owner)
    return Response(status_code=204)


@router.post("/{assistant_id}/versions", operation_id="get_assistant_versions")
async def get_assistant_versions(
    assistant_id: AssistantId, body: AssistantVersionSearch, state: State, caller: Caller
) -> Response:
    """Every version, newest first (`metadata`, `limit`, `offset`)."""
    versions = await _assistants(state).versions(assistant_id, caller.owner)
    found = [v for v in versions if metadata_matches(v.metadata, body.metadata)]
    page = found[body.offset : body.offset + body.limit]
    return json_response([version_body(v) for v in page])


@router.post("/{assistant_id}/latest", operation_id="set_latest_assistant_version")
async def set_latest_version(
    assistant_id: AssistantId, body: AssistantLatest, state: State, caller: Caller
) -> Response:
    """Put an earlier (or later) version back in use."""
    record = await _assistants(state).set_latest(assistant_id, body.version, caller.owner)
    return json_response(assistant_body(record))


@router.get("/{assistant_id}/graph")
async def get_assistant_graph(
    assistant_id: AssistantId,
    state: State,
    caller: Caller,
    xray: Annotated[str, Query(max_length=5, description="true, false or a depth")] = "false",
) -> dict[str, Any]:
    """The graph's nodes and edges, as LangGraph draws it."""
    await _assistants(state).get(assistant_id, caller.owner)
    return state.introspection.drawing(_xray(xray))


@router.get("/{assistant_id}/schemas")
async def get_assistant_schemas(
    assistant_id: AssistantId, state: State, caller: Caller
) -> dict[str, Any]:
    """Input, output, state, config and context JSON schemas."""
    await _assistants(state).get(assistant_id, caller.owner)
    return state.introspection.schemas()


@router.get("/{assistant_id}/subgraphs")
async def get_assistant_subgraphs(
    assistant_id: AssistantId, state: State, caller: Caller, recurse: bool = False
) -> dict[str, Any]:
    await _assistants(state).get(assistant_id, caller.owner)
    return state.introspection.subgraphs(None, recurse)


@router.get("/{assistant_id}/subgraphs/{namespace}")
async def get_assistant_subgraphs_in(
    assistant_id: AssistantId,
    namespace: Annotated[str, Path(max_length=256)],
    state: State,
    caller: Caller,
    recurse: bool = False,
) -> dict[str, Any]:
    await _assistants(state).get(assistant_id, caller.owner)
    return state.introspection.subgraphs(namespace, recurse)


@router.post("/search")
async def search_assistants(
    body: AssistantSearch, response: Response, state: State, caller: Caller
) -> list[dict[str, Any]]:
    """Assistants by graph, name (a case-insensitive substring) and metadata, newest
    first by default; when more follow, `X-Pagination-Next` is the next page's offset."""
    found = [assistant_body(r) for r in await _matching(state, caller.owner, body)]
    key = body.sort_by or "created_at"
    found.sort(key=lambda item: (item[key], item["assistant_id"]))
    if (body.sort_order or "desc") == "desc":
        found.reverse()
    page = found[body.offset : body.offset + body.limit]
    if body.offset + body.limit < len(found):
        response.headers["X-Pagination-Next"] = str(body.offset + body.limit)
    if body.select:
        return [{key: record[key] for key in body.select} for record in page]
    return page


@router.post("/count")
async def count_assistants(body: AssistantCount, state: State, caller: Caller) -> int:
    return len(await _matching(state, caller.owner, body))


def _xray(raw: str) -> bool | int:
    text = raw.strip().lower()
    if text in ("true", "false"):
        return text == "true"
    if text.isdigit() and int(text) <= _MAX_XRAY:
        return int(text) or False
    raise HTTPException(422, f"xray must be true, false or a depth from 0 to {_MAX_XRAY}")
