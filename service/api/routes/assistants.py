"""The one assistant this server serves: the booking graph as `agent`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from service.api.auth import Caller
from service.schemas.models import ERROR_RESPONSES, AssistantSearch
from service.schemas.validation import quote

router = APIRouter(prefix="/assistants", tags=["assistants"], responses=ERROR_RESPONSES)

ASSISTANT_ID = "agent"
_CREATED = "2026-01-01T00:00:00+00:00"


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


@router.get("/{assistant_id}")
async def get_assistant(assistant_id: str, _: Caller) -> dict[str, Any]:
    if not known_assistant(assistant_id):
        raise HTTPException(404, f"Assistant {quote(assistant_id)} not found")
    return assistant_record()


@router.post("/search")
async def search_assistants(body: AssistantSearch, _: Caller) -> list[dict[str, Any]]:
    record = assistant_record()
    matches = (
        (body.graph_id in (None, record["graph_id"]))
        and (body.name in (None, record["name"]))
        and all(record["metadata"].get(k) == v for k, v in body.metadata.items())
    )
    found = [record] if matches else []
    return found[body.offset : body.offset + body.limit]
