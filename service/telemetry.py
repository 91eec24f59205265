"""Worker start-up series and scrape-time readings of the storage files."""

from __future__ import annotations

import logging
import platform
from importlib.metadata import version

from service import __version__, metrics
from service.storage.base import Persistence
from service.storage.sqlite.driver import DRIVER_NAME, SQLITE_VERSION

log = logging.getLogger(__name__)


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


def refresh_storage_gauges(persistence: Persistence) -> None:
    """Read the SQLite files' sizes now, so any worker answers correctly.

    Blocking (it may wait for this worker's reader connection): call it off the event loop.
    """
    refresh_pools = getattr(persistence, "refresh_gauges", None)
    if refresh_pools is not None:  # PostgreSQL: this worker's connection pools
        refresh_pools()
    if not persistence.backend.startswith("sqlite"):
        return
    from service.storage.sqlite.backend import sqlite_file_sizes

    path = persistence.path  # type: ignore[attr-defined]
    for name, size in sqlite_file_sizes(path).items():
        metrics.SQLITE_FILE_BYTES.labels(file=name).set(size)
    if persistence.backend != "sqlite":  # the benchmark's stock saver has no sync reader
        return
    try:
        saver = persistence.checkpointer
        # The reader runs in autocommit, so it sees the latest commit of every worker.
        with saver.lock:  # type: ignore[attr-defined]
            freelist = saver.conn.execute("PRAGMA freelist_count").fetchone()[0]  # type: ignore[attr-defined]
            page_size = saver.conn.execute("PRAGMA page_size").fetchone()[0]  # type: ignore[attr-defined]
        metrics.SQLITE_FREELIST_PAGES.set(freelist)
        metrics.SQLITE_PAGE_SIZE.set(page_size)
    except Exception:  # a scrape must never fail because storage is slow
        log.warning("could not read SQLite page counts", exc_info=True)


def scrape(persistence: Persistence) -> tuple[bytes, str]:
    """Fresh storage readings, then the exposition text summed over all workers."""
    refresh_storage_gauges(persistence)
    return metrics.render()
