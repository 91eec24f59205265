"""The per-worker background loops of the run layer (the run queue, the cron
scheduler): started with the worker, cancelled when it stops."""

from __future__ import annotations

import asyncio
import contextlib


class WorkerLoop:
    """A task that runs `_loop` from `start()` until `stop()`."""

    name = "loop"

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        raise NotImplementedError
