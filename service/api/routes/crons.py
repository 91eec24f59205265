"""Crons: runs on a schedule, on a thread or each on a new one (`service.runs.crons`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from service.api.auth import Caller, Principal
from service.api.deps import AppState, State, ThreadId
from service.api.encoding import json_response
from service.api.limits import check_metadata
from service.api.run_bodies import check_run_request
from service.api.webhooks import check_webhook_target
from service.runs.crons import CronService
from service.schemas.models import ERROR_RESPONSES, CronCount, CronCreate, CronPatch, CronSearch
from service.storage.base import CronRecord, metadata_matches
from service.storage.errors import CronNotFoundError

router = APIRouter(tags=["crons"], responses=ERROR_RESPONSES)


def cron_body(cron: CronRecord) -> dict[str, Any]:
    """The LangGraph Server API's Cron."""
    return {
        "cron_id": cron.cron_id,
        "assistant_id": cron.assistant_id,
        "thread_id": cron.thread_id,
        "on_run_completed": cron.on_run_completed,
        "end_time": cron.end_time,
        "schedule": cron.schedule,
        "timezone": cron.timezone,
        "created_at": cron.created_at,
        "updated_at": cron.updated_at,
        "payload": cron.payload,
        "user_id": cron.user_id,
        "next_run_date": cron.next_run_date,
        "metadata": cron.metadata,
        "enabled": cron.enabled,
    }


def _crons(state: AppState) -> CronService:
    return CronService(state.runs)


async def _owned_cron(state: AppState, caller: Principal, cron_id: str) -> CronRecord:
    """The caller's cron; another owner's is missing (404), as threads are."""
    cron = await state.persistence.get_cron(cron_id)
    if cron is None or (caller.owner is not None and cron.user_id != caller.owner):
        raise CronNotFoundError(cron_id)
    return cron


async def _matching(state: AppState, caller: Principal, body: CronCount) -> list[CronRecord]:
    crons = await state.persistence.list_crons(body.assistant_id, body.thread_id, body.enabled)
    return [
        cron
        for cron in crons
        if (caller.owner is None or cron.user_id == caller.owner)
        and metadata_matches(cron.metadata, body.metadata)
    ]


@router.post("/runs/crons", operation_id="create_cron", response_model=dict[str, Any])
async def create_cron(body: CronCreate, state: State, caller: Caller) -> Response:
    """A cron whose every firing runs on a new thread (deleted after the run unless
    `on_run_completed=keep`)."""
    check_run_request(body.run_request(), state)
    await state.runs.assistants.get(body.assistant_id, caller.owner)
    return json_response(cron_body(await _crons(state).create(body, None, caller.owner)))


@router.post(
    "/threads/{thread_id}/runs/crons", operation_id="create_thread_cron", response_model=dict
)
async def create_thread_cron(
    thread_id: ThreadId, body: CronCreate, state: State, caller: Caller
) -> Response:
    """A cron whose firings run on this thread, in its order, like background runs."""
    check_run_request(body.run_request(), state)
    await state.runs.assistants.get(body.assistant_id, caller.owner)
    return json_response(cron_body(await _crons(state).create(body, thread_id, caller.owner)))


@router.post("/runs/crons/search", operation_id="search_crons", response_model=list[dict])
async def search_crons(body: CronSearch, state: State, caller: Caller) -> Response:
    crons = await _matching(state, caller, body)
    key = body.sort_by or "created_at"
    crons.sort(key=lambda cron: (getattr(cron, key) or "", cron.cron_id))
    if body.sort_order == "desc":
        crons.reverse()
    page = [cron_body(cron) for cron in crons[body.offset : body.offset + body.limit]]
    if body.select:
        page = [{field: item[field] for field in body.select} for item in page]
    return json_response(page)


@router.post("/runs/crons/count", operation_id="count_crons", response_model=int)
async def count_crons(body: CronCount, state: State, caller: Caller) -> Response:
    return json_response(len(await _matching(state, caller, body)))


@router.patch("/runs/crons/{cron_id}", operation_id="update_cron", response_model=dict)
async def update_cron(cron_id: ThreadId, body: CronPatch, state: State, caller: Caller) -> Response:
    """Change what is sent; the next firing is counted from now."""
    cron = await _owned_cron(state, caller, cron_id)
    check_webhook_target(body.webhook, state.settings)
    if body.metadata is not None:
        check_metadata(body.metadata, state.settings, "cron metadata")
    if body.config is not None:
        check_metadata(body.config.model_dump(exclude_unset=True), state.settings, "config")
    return json_response(cron_body(await _crons(state).update(cron, body)))


@router.delete("/runs/crons/{cron_id}", status_code=204, operation_id="delete_cron")
async def delete_cron(cron_id: ThreadId, state: State, caller: Caller) -> Response:
    await _owned_cron(state, caller, cron_id)
    await state.persistence.delete_cron(cron_id)
    return Response(status_code=204)
