"""Joins of runs that execute elsewhere wait here: one loop per worker reads the status of
every run being joined in one query, at a fixed interval, instead of each join polling
its own record. A run that starts on this worker wakes its joins at once (they then
wait on its task)."""

from __future__ import annotations

import asyncio
import logging

from service.storage.base import Persistence
from service.storage.run_records import ACTIVE_STATUSES

log = logging.getLogger(__name__)

# How often the waited-for runs' statuses are read while any join waits.
WATCH_INTERVAL_S = 0.02


class EndWatch:
    def __init__(self, persistence: Persistence, interval_s: float = WATCH_INTERVAL_S) -> None:
        self.persistence = persistence
        self.interval_s = interval_s
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def until_changed(self, run_id: str) -> None:
        """Until the run has ended or lost its record, or has started on this worker."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(run_id, []).append(waiter)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name="end-watch")
        try:
            await waiter
        finally:
            waiters = self._waiters.get(run_id, [])
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._waiters.pop(run_id, None)

    def started_here(self, run_id: str) -> None:
        self._wake(run_id)

    def _wake(self, run_id: str, error: BaseException | None = None) -> None:
        for waiter in self._waiters.pop(run_id, ()):
            if waiter.done():
                continue
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)

    async def _loop(self) -> None:
        while self._waiters:
            await asyncio.sleep(self.interval_s)
            run_ids = list(self._waiters)
            if not run_ids:
                break
            try:
                statuses = await self.persistence.run_statuses(run_ids)
            except Exception as exc:  # storage down: the joins answer it (503)
                for run_id in run_ids:
                    self._wake(run_id, exc)
                continue
            for run_id in run_ids:
                if statuses.get(run_id) not in ACTIVE_STATUSES:
                    self._wake(run_id)
