"""Maintenance leadership: exactly one worker process at a time, handed over on death.

The leader loop and the timed pass are the same for every backend (below); the lock
differs. For SQLite: a POSIX record lock on a file beside the database. The kernel
drops it the moment its process dies (SIGKILL included), and a follower that retries
every few seconds takes over. Its own file, because closing any descriptor of a file
drops all of the process's record locks on it, and the thread guard's locks must not
be touched.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from service.observability import metrics
from service.storage.locks import locked_by_another_process, try_record_lock

log = logging.getLogger(__name__)
FOLLOWER_RETRY_S = 2.0


class FileLeaderLock:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        self.held = False

    def try_acquire(self) -> bool:
        if not self.held:
            self.held = try_record_lock(self._fd, 0)
        return self.held

    def release(self) -> None:
        if self.held:
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, 0, os.SEEK_SET)
            self.held = False

    def close(self) -> None:
        self.release()
        os.close(self._fd)


def service_is_running(path: Path | str) -> bool:
    """True while a live worker holds leadership: the service has this database open."""
    path = Path(path)
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        return locked_by_another_process(fd, 0)
    finally:
        os.close(fd)


class SweepReport(Protocol):
    expired_deleted: int
    checkpoints_removed: int
    stale_runs: int
    expired_events: int

    def as_dict(self) -> dict[str, Any]: ...


R = TypeVar("R", bound=SweepReport)


async def lead_and_sweep(
    try_lead: Callable[[], Awaitable[bool]],
    sweep: Callable[[], Awaitable[object]],
    interval_s: float,
) -> None:
    """Every backend's leader loop: a follower retries leadership every few seconds; the
    leader sweeps once per interval, if it still leads when the interval ends."""
    while True:
        if await try_lead():
            await asyncio.sleep(interval_s)
            if await try_lead():
                await sweep()
        else:
            await asyncio.sleep(min(interval_s, FOLLOWER_RETRY_S))


async def timed_sweep(sweep: Callable[[], Awaitable[R]]) -> R | None:
    """One maintenance pass, counted and timed; a failed pass is logged, never raised."""
    started = time.perf_counter()
    try:
        report = await sweep()
    except Exception:
        log.exception("maintenance pass failed")
        metrics.MAINTENANCE_SWEEPS.labels(result="error").inc()
        return None
    finally:
        metrics.MAINTENANCE_SECONDS.observe(time.perf_counter() - started)
    metrics.MAINTENANCE_SWEEPS.labels(result="ok").inc()
    metrics.MAINTENANCE_DELETED.labels(kind="expired_threads").inc(report.expired_deleted)
    metrics.MAINTENANCE_DELETED.labels(kind="checkpoints").inc(report.checkpoints_removed)
    metrics.MAINTENANCE_DELETED.labels(kind="run_events").inc(report.expired_events)
    metrics.MAINTENANCE_DELETED.labels(kind="store_items").inc(report.expired_store_items)
    metrics.RUNS_RECOVERED.inc(report.stale_runs)
    if (
        report.expired_deleted
        or report.checkpoints_removed
        or report.stale_runs
        or report.expired_store_items
    ):
        log.info("maintenance: %s", report.as_dict())
    return report
