"""The FastAPI application: one per worker process.

Each worker opens its own connections in the lifespan and closes them on shutdown;
nothing opened before the fork is used after it.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from service.agent.graph import build_graph
from service.agent.model import build_model
from service.agent.tools import build_tools
from service.api.access_log import REQUEST_ID_HEADER, AccessLog
from service.api.auth import KeyRing
from service.api.deps import AppState
from service.api.errors import install_error_handlers
from service.api.middleware import HttpMetrics, JsonBodies, RequestLimits
from service.api.routes import (
    assistants,
    chat,
    crons,
    runs,
    state,
    stateless_runs,
    store,
    system,
    threads,
)
from service.api.routes.assistants import ASSISTANT_ID
from service.api.webhooks import WebhookSender
from service.bookings.store import open_booking_store
from service.observability import metrics
from service.observability.telemetry import set_build_info
from service.runs.crons import CronScheduler, CronService
from service.runs.introspection import GraphIntrospection
from service.runs.lifecycle import RunService
from service.runs.queue import RunQueue
from service.settings import Settings, get_settings
from service.storage import open_persistence, sqlite_library

log = logging.getLogger(__name__)

# Response headers a browser app may read: where a run is, where to reconnect or join,
# when to retry.
EXPOSED_HEADERS = ["Content-Location", "Location", "Retry-After", REQUEST_ID_HEADER]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    # The SQLite threads wait for the GIL behind the event loop; a shorter switch
    # interval than Python's 5 ms lets a finished commit report back sooner.
    sys.setswitchinterval(settings.gil_switch_interval_ms / 1000)
    persistence = open_persistence(settings)
    await persistence.start()
    bookings = open_booking_store(settings)
    graph = build_graph(build_model(settings), build_tools(bookings, settings), settings).compile(
        checkpointer=persistence.checkpointer, store=persistence.store, name=ASSISTANT_ID
    )
    run_service = RunService(graph, persistence, settings, graph_id=ASSISTANT_ID)
    webhooks = WebhookSender(settings)
    run_service.on_run_end = webhooks.send
    app.state.service = AppState(
        settings=settings,
        persistence=persistence,
        graph=graph,
        runs=run_service,
        introspection=GraphIntrospection(graph, ASSISTANT_ID),
        extra={"bookings": bookings},
    )
    queue = RunQueue(run_service, settings)
    scheduler = CronScheduler(CronService(run_service))
    library = sqlite_library()
    set_build_info(persistence.backend, str(library["version"]), str(library["driver"]))
    # What start-up built lives as long as the worker: move it out of the collector's
    # way, so that a full collection walks only what the turns create (without this,
    # one took 200 ms of a busy worker's event loop).
    gc.collect()
    gc.freeze()
    metrics.WORKER_UP.labels(pid=str(os.getpid())).set(1)
    log.info("worker %d ready (backend=%s)", os.getpid(), persistence.backend)
    queue.start()
    scheduler.start()
    try:
        yield
    finally:
        await scheduler.stop()
        # A worker that stops takes no more background runs (the others do), and lets
        # the runs it has in flight, their clients perhaps gone, finish.
        await queue.stop()
        await run_service.drain(settings.graceful_timeout_s)
        await webhooks.aclose(timeout_s=5)
        await persistence.aclose()
        bookings.close()
        log.info("worker %d closed its connections", os.getpid())


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    docs_open = settings.api_docs_public or not settings.auth_enabled
    app = FastAPI(
        title="Booking agent",
        version="0.1.0",
        description="A LangGraph appointment-booking agent with the LangGraph Server API.",
        lifespan=lifespan,
        # No redirect is ever built from the client's Host header: `/threads/` is a 404.
        redirect_slashes=False,
        openapi_url="/openapi.json" if docs_open else None,
        docs_url="/docs" if docs_open else None,
        redoc_url="/redoc" if docs_open else None,
    )
    app.state.settings = settings
    app.state.keyring = KeyRing.from_settings(settings)
    install_error_handlers(app)
    # Each request is matched against the routes in this order (FastAPI tries them one
    # by one), so the routes every conversation turn takes come first: a thread's runs,
    # then its record and state. No earlier pattern takes a later router's path: a
    # thread's cron (`POST /threads/{id}/runs/crons`) is a method mismatch in `runs`.
    routers = [
        runs.router,
        threads.router,
        state.router,
        system.router,
        assistants.router,
        crons.router,
        stateless_runs.router,
        store.router,
    ]
    if not docs_open:
        routers.append(system.openapi_router)
    if settings.chat_page:
        routers.append(chat.router)
    for router in routers:
        app.include_router(router)
    app.add_middleware(
        RequestLimits,
        max_bytes=settings.max_request_bytes,
        max_header_bytes=settings.http_max_header_bytes,
    )
    app.add_middleware(JsonBodies, allowed_origins=settings.cors_origins)
    app.add_middleware(HttpMetrics)
    if settings.access_log:
        app.add_middleware(AccessLog)
    if settings.cors_origins:  # outermost: preflights are answered before anything else
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=settings.cors_methods,
            allow_headers=settings.cors_headers,
            allow_credentials=settings.cors_allow_credentials,
            expose_headers=EXPOSED_HEADERS,
            max_age=settings.cors_max_age_s,
        )
    return app
