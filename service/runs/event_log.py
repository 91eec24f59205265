"""A streaming run's events, in order, with their ids.

The run's own SSE response and any join on this worker follow the log in memory. A
resumable run (`stream_resumable=True`) also writes its events to the database in
small batches (one transaction each, at most one batch every `FLUSH_INTERVAL_S`), so a
client on any worker, or one that reconnects after losing its stream, replays them
from its `Last-Event-ID`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from service.runs.encoding import encode
from service.storage.base import Persistence, RunEvent

log = logging.getLogger(__name__)

# How long a resumable run's new events wait to be written with the ones after them.
FLUSH_INTERVAL_S = 0.05


class EventLog:
    """Events as (seq, event, data); seq, the SSE id, counts from 1."""

    def __init__(
        self,
        persistence: Persistence,
        thread_id: str,
        run_id: str,
        *,
        persist: bool,
        max_kept: int,
    ) -> None:
        self.persistence = persistence
        self.thread_id = thread_id
        self.run_id = run_id
        self.persist = persist
        self.max_kept = max_kept
        self.events: list[tuple[int, str, Any]] = []
        self.closed = False
        self._wake = asyncio.Event()
        self._unsaved: list[RunEvent] = []
        self._flusher: asyncio.Task[None] | None = None
        self._writing = asyncio.Lock()
        # Events to come that `take_last` already handed over to be kept.
        self._kept_ahead = 0

    def append(self, event: str, data: Any) -> int:
        seq = len(self.events) + 1
        self.events.append((seq, event, data))
        if self._kept_ahead:
            self._kept_ahead -= 1
        elif self.persist:
            if seq <= self.max_kept:
                self._unsaved.append((seq, event, encode(data).decode()))
                if self._flusher is None or self._flusher.done():
                    self._flusher = asyncio.create_task(self._flush_soon())
            elif seq == self.max_kept + 1:
                log.warning(
                    "run %s has more than %d events (RESUMABLE_STREAM_MAX_EVENTS); the rest "
                    "are streamed but not kept",
                    self.run_id,
                    self.max_kept,
                )
        wake, self._wake = self._wake, asyncio.Event()
        wake.set()
        return seq

    async def flush(self) -> None:
        """Write what is not written yet (before the run's final status, and at the end)."""
        async with self._writing:
            batch, self._unsaved = self._unsaved, []
            if not batch:
                return
            try:
                await self.persistence.append_run_events(self.thread_id, self.run_id, batch)
            except Exception:
                log.exception("could not keep %d events of run %s", len(batch), self.run_id)

    async def settled(self) -> None:
        """Until no batch is being written (one that began before the last events)."""
        async with self._writing:
            pass

    def take_last(self, coming: list[tuple[str, Any]]) -> list[RunEvent]:
        """What is not written yet, and the `coming` events (appended next, once the
        caller has kept these): the run's last events, for the caller to keep with its
        final status in one transaction."""
        if not self.persist:
            return []
        batch, self._unsaved = self._unsaved, []
        seq = len(self.events)
        for event, data in coming:
            seq += 1
            if seq <= self.max_kept:
                batch.append((seq, event, encode(data).decode()))
        self._kept_ahead = len(coming)
        return batch

    async def close(self) -> None:
        """No more events: write the last ones and let the followers finish."""
        if self._flusher is not None and not self._flusher.done():
            self._flusher.cancel()
        try:
            await asyncio.shield(self.flush())
        finally:
            self.closed = True
            self._wake.set()

    async def follow(self, after: int = 0) -> AsyncIterator[tuple[int, str, Any]]:
        """The events after `after`, then each as it comes, until the log closes."""
        index = max(0, after)
        while True:
            wake = self._wake
            while index < len(self.events):
                yield self.events[index]
                index += 1
            if self.closed:
                return
            await wake.wait()

    async def _flush_soon(self) -> None:
        await asyncio.sleep(FLUSH_INTERVAL_S)
        await self.flush()
