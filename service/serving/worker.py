"""The Gunicorn worker: uvicorn's, with this service's connection limits and deadlines."""

from __future__ import annotations

from typing import Any

from uvicorn_worker import UvicornWorker

from service.settings import get_settings


class BookingWorker(UvicornWorker):
    """uvicorn with the timed h11 protocol, a header size limit and a connection limit.

    The keep-alive timeout comes from Gunicorn's `keepalive` (deploy/gunicorn.conf.py).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        settings = get_settings()
        self.CONFIG_KWARGS = {
            **UvicornWorker.CONFIG_KWARGS,
            "http": "service.serving.protocol:TimedH11Protocol",
            "h11_max_incomplete_event_size": settings.http_max_header_bytes,
            "limit_concurrency": settings.http_max_connections,
        }
        super().__init__(*args, **kwargs)
