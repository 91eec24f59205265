"""Joins of runs that are not executing on this worker wait here: one loop per worker
reads the status of every run being joined in one query, instead of each join polling
its own record. A run that starts on this worker wakes its joins at once (they then
wait on its task).

A pending run that this worker accepted will most likely start here (the queue takes
its own runs first), so it is read only every `slow_interval_s` (RUN_QUEUE_POLL_S): in
case another worker took it. The others are read every `interval_s`."""

from __future__ import annotations

import asyncio
import time

from service.storage.base import Persistence
from service.storage.run_records import ACTIVE_STATUSES

# How often the statuses of runs executing elsewhere are read while any join waits.
WATCH_INTERVAL_S = 0.02


class EndWatch:
    def __init__(
        self,
        persistence: Persistence,
        interval_s: float = WATCH_INTERVAL_S,
        slow_interval_s: float = 0.1,
    ) -> None:
        self.persistence = persistence
        self.interval_s = interval_s
        self.slow_interval_s = max(slow_interval_s, interval_s)
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        # Runs whose joins all expect them to start on this worker.
        self._expected_here: set[str] = set()
        self._slow_read_at = 0.0
        self._task: asyncio.Task[None] | None = None

    async def until_changed(self, run_id: str, *, expected_here: bool = False) -> None:
        """Until the run has ended or lost its record, or has started on this worker."""
        waiter = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(run_id, [])
        if expected_here and not waiters:
            self._expected_here.add(run_id)
        elif not expected_here:
            self._expected_here.discard(run_id)
        waiters.append(waiter)
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
                self._expected_here.discard(run_id)

    def started_here(self, run_id: str) -> None:
        self._wake(run_id)

    def _wake(self, run_id: str, error: BaseException | None = None) -> None:
        self._expected_here.discard(run_id)
        for waiter in self._waiters.pop(run_id, ()):
            if waiter.done():
                continue
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)

    def _due(self) -> list[str]:
        now = time.monotonic()
        if now - self._slow_read_at >= self.slow_interval_s:
            self._slow_read_at = now
            return list(self._waiters)
        return [run_id for run_id in self._waiters if run_id not in self._expected_here]

    async def _loop(self) -> None:
        while self._waiters:
            await asyncio.sleep(self.interval_s)
            run_ids = self._due()
            if not run_ids:
                continue
            try:
                statuses = await self.persistence.run_statuses(run_ids)
            except Exception as exc:  # storage down: the joins answer it (503)
                for run_id in run_ids:
                    self._wake(run_id, exc)
                continue
            for run_id in run_ids:
                status = statuses.get(run_id)
                if status not in ACTIVE_STATUSES:
                    self._wake(run_id)
                elif status == "running" and run_id in self._expected_here:
                    self._wake(run_id)  # taken by another worker: its joins read it often now
