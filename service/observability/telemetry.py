"""Worker start-up series, and the scrape: storage readings, then every worker's samples."""

from __future__ import annotations

import platform
from importlib.metadata import version
from typing import Protocol

from service import __version__
from service.observability import metrics


class GaugeSource(Protocol):
    """A storage backend, as far as the scrape is concerned."""

    def refresh_gauges(self) -> None: ...


def set_build_info(backend: str, sqlite_version: str, sqlite_driver: str) -> None:
    """Called once per worker at start: build info, and zero series for rare events."""
    metrics.BUILD_INFO.labels(
        version=__version__,
        langgraph=version("langgraph"),
        sqlite=sqlite_version,
        sqlite_driver=sqlite_driver,
        backend=backend,
        python=platform.python_version(),
    ).set(1)
    metrics.init_series(backend)


def scrape(persistence: GaugeSource) -> tuple[bytes, str]:
    """Fresh storage readings (each backend its own), then the text summed over all workers.

    Blocking (a backend may wait for its reader connection): call it off the event loop.
    """
    persistence.refresh_gauges()
    return metrics.render()
