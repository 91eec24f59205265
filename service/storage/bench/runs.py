"""Run records for the benchmark backends: in this worker's memory, like their threads."""

from __future__ import annotations

import dataclasses

from service.storage.base import RunRecord, RunStatus
from service.storage.records import utcnow_iso
from service.storage.run_records import ACTIVE_STATUSES


class InMemoryRuns:
    """The run half of the Persistence interface, kept in a dict."""

    def __init__(self) -> None:
        self._runs: dict[str, RunRecord] = {}

    async def create_run(self, run: RunRecord) -> None:
        self._runs[run.run_id] = dataclasses.replace(run)

    async def set_run_status(self, run_id: str, status: RunStatus) -> None:
        if run := self._runs.get(run_id):
            run.status, run.updated_at = status, utcnow_iso()

    async def get_run(self, thread_id: str, run_id: str) -> RunRecord | None:
        run = self._runs.get(run_id)
        return run if run is not None and run.thread_id == thread_id else None

    async def list_runs(
        self, thread_id: str, status: RunStatus | None, limit: int, offset: int
    ) -> list[RunRecord]:
        found = [
            r
            for r in self._runs.values()
            if r.thread_id == thread_id and (status is None or r.status == status)
        ]
        found.sort(key=lambda r: (r.created_at, r.run_id), reverse=True)
        return found[offset : offset + limit]

    async def delete_run(self, thread_id: str, run_id: str) -> bool:
        run = await self.get_run(thread_id, run_id)
        if run is None or run.status in ACTIVE_STATUSES:
            return False
        del self._runs[run_id]
        return True

    def forget_thread(self, thread_id: str) -> None:
        for run_id in [r.run_id for r in self._runs.values() if r.thread_id == thread_id]:
            del self._runs[run_id]
