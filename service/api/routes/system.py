"""Liveness, readiness, facts about this worker, and Prometheus metrics."""

from __future__ import annotations

import os
from importlib.metadata import version

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from service import __version__
from service.api.auth import Caller, require_metrics_access
from service.api.deps import State
from service.observability import telemetry
from service.storage import sqlite_library

router = APIRouter(tags=["system"])


@router.get("/ok")
async def ok() -> dict[str, bool]:
    """Liveness: the process answers. Says nothing about storage."""
    return {"ok": True}


@router.get("/readyz", responses={503: {"description": "Storage cannot serve reads"}})
async def readyz(state: State) -> JSONResponse:
    """Readiness: a real read through the checkpointer's connection."""
    try:
        await state.persistence.check_ready()
    except Exception as exc:
        return JSONResponse(
            {"status": "unavailable", "detail": f"storage read failed: {exc}"}, status_code=503
        )
    return JSONResponse({"status": "ok", "backend": state.persistence.backend})


@router.get("/info")
async def info(state: State, _: Caller) -> dict:
    """Versions, backend and this worker's effective storage settings."""
    settings = state.settings
    return {
        "version": __version__,
        "langgraph": version("langgraph"),
        "langgraph_checkpoint": version("langgraph-checkpoint"),
        "sqlite": sqlite_library(),
        "pid": os.getpid(),
        "workers": settings.web_concurrency,
        "durability": settings.checkpoint_durability,
        "llm_provider": settings.llm_provider,
        "storage": state.persistence.info(),
        "flags": {"assistants": True, "crons": False, "langsmith": False},
    }


@router.get("/metrics", include_in_schema=False, dependencies=[Depends(require_metrics_access)])
async def prometheus_metrics(state: State) -> Response:
    """All workers' samples; storage readings are taken now, in a thread off the event loop."""
    body, content_type = await run_in_threadpool(telemetry.scrape, state.persistence)
    return Response(body, media_type=content_type)


# With auth on (and API_DOCS_PUBLIC off) the schema needs a key like the API it describes.
openapi_router = APIRouter(tags=["system"])


@openapi_router.get("/openapi.json", include_in_schema=False)
async def openapi_schema(request: Request, _: Caller) -> JSONResponse:
    return JSONResponse(request.app.openapi())
