"""The background run queue: pending run records in the database every worker shares.

No broker: a run accepted by any worker is a `pending` row; each worker's queue loop
takes the oldest pending run of a thread nobody holds, up to
BACKGROUND_RUNS_PER_WORKER at a time. Taking it means holding the thread in the guard
first and then claiming the row (`pending` -> `running`, which only one worker can
do), so a thread's runs start one after another in the order they were accepted, and
a run whose worker dies is as visible to the maintenance leader as any other. The
worker that accepts a run, or ends one, looks at once; the others within
RUN_QUEUE_POLL_S, the same poll that carries cancels asked of this worker's runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from service.observability import metrics
from service.runs.lifecycle import RunService, worker_name
from service.runs.loops import WorkerLoop
from service.settings import Settings
from service.storage.errors import StorageUnavailableError
from service.storage.records import seconds_since

log = logging.getLogger(__name__)

# The queue's depth and age are read at most this often by each worker.
_GAUGE_INTERVAL_S = 1.0


class RunQueue(WorkerLoop):
    """One worker's loop over the shared queue; stopped, it takes no more runs (a worker
    shutting down leaves its queue to the others)."""

    name = "run-queue"

    def __init__(self, runs: RunService, settings: Settings) -> None:
        super().__init__()
        self.runs = runs
        self.settings = settings
        self._gauges_at = 0.0
        # When this worker next reads the cancels other workers asked of its runs.
        self._cancels_due = 0.0
        # Pending runs not due yet (`after_seconds`) seen last pass: the next pass looks
        # past as many more, so that they never hide the runs behind them.
        self._not_due = 0

    async def _loop(self) -> None:
        poll_s = self.settings.run_queue_poll_s
        while True:
            timeout = poll_s
            if self.runs.executions:  # wake when the look at cancels is due
                timeout = max(0.0, min(poll_s, self._cancels_due - time.monotonic()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.runs.queued.wait(), timeout)
            self.runs.queued.clear()
            try:
                await self.tick()
            except StorageUnavailableError as exc:
                log.warning("run queue: storage unavailable (%s); trying again", exc)
            except Exception:
                log.exception("run queue pass failed; trying again")

    async def tick(self) -> None:
        """Apply cancels asked of this worker's runs (at most every RUN_QUEUE_POLL_S: a
        pass runs each time a run is accepted or ends here), then start what there is
        room for."""
        now = time.monotonic()
        if now >= self._cancels_due:
            self._cancels_due = now + self.settings.run_queue_poll_s
            await self.runs.apply_cancel_requests()
        free = self.settings.background_runs_per_worker - self.runs.background_active
        if free > 0:
            not_due = 0
            pending = await self.runs.persistence.next_pending_runs(
                free * 2 + self._not_due, worker_name()
            )
            for run in pending:
                if free <= 0:
                    break
                if self.runs.not_due(run):
                    not_due += 1
                elif run.run_id not in self.runs.executions and await self.runs.start_queued(run):
                    free -= 1
            self._not_due = not_due
        if now - self._gauges_at >= _GAUGE_INTERVAL_S:
            self._gauges_at = now
            depth, oldest = await self.runs.persistence.queue_stats()
            metrics.RUN_QUEUE_DEPTH.set(depth)
            age = 0.0 if oldest is None else max(0.0, seconds_since(oldest))
            metrics.RUN_QUEUE_OLDEST_SECONDS.set(age)
