"""Gunicorn configuration: several uvicorn workers over one shared checkpoint database.

Worker class: `service.serving.worker.BookingWorker`, `uvicorn_worker.UvicornWorker`
(the maintained successor of the deprecated `uvicorn.workers`) with this service's
connection deadlines and limits: gunicorn supervises and respawns processes, uvicorn
runs each worker's event loop. Gunicorn's own ASGI worker is newer and does not
yet support lifespan shutdown hooks as completely.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from service.settings import get_settings

settings = get_settings()

# prometheus_client reads this when first imported, so it is set before any worker
# imports the app; `on_starting` empties it so old samples never leak into a new run.
# Counters and histograms of dead workers stay until then (their totals must not drop);
# `child_exit` removes only their live gauges.
os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR",
    str(Path(tempfile.gettempdir()) / f"booking-agent-metrics-{settings.port}"),
)

wsgi_app = "service.main:app"
bind = [f"{settings.host}:{settings.port}"]
workers = settings.web_concurrency
worker_class = "service.serving.worker.BookingWorker"
graceful_timeout = settings.graceful_timeout_s
timeout = 60
keepalive = settings.http_keepalive_timeout_s
backlog = 2048
preload_app = False  # each worker builds its app, and its connections, after the fork
loglevel = settings.log_level
accesslog = None
errorlog = "-"
proc_name = "booking-agent"


def on_starting(server) -> None:
    """In the master, before any fork: fresh metrics directory, checks, schema."""
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    # Only prometheus_client's sample files: the directory may be shared or mounted.
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)

    from service.bootstrap import prepare_storage
    from service.observability.logs import configure_logging

    configure_logging(settings.log_level)
    prepare_storage(settings)
    server.log.info(
        "booking agent: %d workers, backend=%s, durability=%s",
        settings.web_concurrency,
        settings.checkpointer,
        settings.checkpoint_durability,
    )


def post_worker_init(worker) -> None:
    from service.observability.logs import configure_logging

    configure_logging(settings.log_level)


def child_exit(server, worker) -> None:
    """A worker is gone: drop its live gauges, keep its counters."""
    from service.observability.metrics import mark_worker_dead

    mark_worker_dead(worker.pid)
