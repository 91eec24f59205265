"""Following a run's stream from any worker: `GET /threads/{id}/runs/{run_id}/stream`.

On the worker that executes the run, from its event log in memory; elsewhere (or once
it has ended), from the events a resumable run keeps in the database, read until the
run has ended. A run that is not resumable keeps nothing, so a join on another worker
sees only its end.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from service.runs.encoding import encode
from service.runs.lifecycle import RunService
from service.storage.run_records import ACTIVE_STATUSES

# Events read from the database at a time.
_PAGE = 500
_LAST_EVENTS = ("end", "error")


async def follow_run(
    runs: RunService, thread_id: str, run_id: str, after: int
) -> AsyncIterator[tuple[int, str, str]]:
    """(seq, event, data as JSON text) after event `after`, until the run's stream ends."""
    persistence = runs.persistence
    last = after
    delay = 0.005
    while True:
        execution = runs.executions.get(run_id)
        if execution is not None and execution.log is not None:
            async for seq, event, data in execution.log.follow(last):
                last = seq
                yield seq, event, encode(data).decode()
            return
        stored = await persistence.run_events_after(run_id, last, _PAGE)
        for seq, event, data in stored:
            last = seq
            yield seq, event, data
            if event in _LAST_EVENTS:
                return
        if stored:
            delay = 0.005
            continue
        run = await persistence.get_run(thread_id, run_id)
        if run is None or run.status not in ACTIVE_STATUSES:
            if await persistence.run_events_after(run_id, last, 1):
                continue  # written just before the end
            yield last + 1, "end", "null"
            return
        await asyncio.sleep(delay)
        delay = min(delay * 2, runs.settings.run_queue_poll_s)
