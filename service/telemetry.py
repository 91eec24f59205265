"""Worker start-up series, and the scrape: storage readings, then every worker's samples."""

from __future__ import annotations

import platform
from importlib.metadata import version

from service import __version__, metrics
from service.storage.base import Persistence
from service.storage.sqlite.driver import DRIVER_NAME, SQLITE_VERSION


def set_build_info(backend: str) -> None:
    """Called once per worker at start: build info, and zero series for rare events."""
    metrics.BUILD_INFO.labels(
        version=__version__,
        langgraph=version("langgraph"),
        sqlite=SQLITE_VERSION,
        sqlite_driver=DRIVER_NAME,
        backend=backend,
        python=platform.python_version(),
    ).set(1)
    metrics.init_series(backend)


def scrape(persistence: Persistence) -> tuple[bytes, str]:
    """Fresh storage readings (each backend its own), then the text summed over all workers.

    Blocking (a backend may wait for its reader connection): call it off the event loop.
    """
    persistence.refresh_gauges()
    return metrics.render()
