"""In-memory backend: the no-persistence ceiling for benchmarks.

Each worker keeps its own threads, so a conversation is only visible on the worker
that served it. Never use it for real traffic.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from service.settings import Settings
from service.storage.base import IfExists, PruneStrategy, ThreadQuery, ThreadRecord
from service.storage.bench.runs import InMemoryRuns
from service.storage.errors import ThreadExistsError
from service.storage.locks import FileLockGuard
from service.storage.records import apply_thread_update, utcnow_iso


def _thread_id(record: ThreadRecord) -> str:
    return record.thread_id


class MemoryPersistence(InMemoryRuns):
    backend = "memory"

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.checkpointer = InMemorySaver()
        self.store = InMemoryStore()  # this worker's own, like its checkpoints
        lock_dir = Path(settings.checkpoints_db_path).parent
        if not lock_dir.exists():
            lock_dir = Path(tempfile.gettempdir())
        self.guard = FileLockGuard(lock_dir / "memory-threads.locks")
        self._threads: dict[str, ThreadRecord] = {}

    async def create_thread(
        self,
        thread_id: str,
        metadata: dict[str, Any],
        if_exists: IfExists,
        ttl_minutes: float | None = None,
    ) -> tuple[ThreadRecord, bool]:
        if thread_id in self._threads:
            if if_exists == "raise":
                raise ThreadExistsError(thread_id)
            return self._threads[thread_id], False
        now = utcnow_iso()
        record = ThreadRecord(thread_id, now, now, dict(metadata), ttl_minutes=ttl_minutes)
        self._threads[thread_id] = record
        return record, True

    async def get_thread(self, thread_id: str) -> ThreadRecord | None:
        return self._threads.get(thread_id)

    async def search_threads(
        self, query: ThreadQuery, limit: int, offset: int
    ) -> list[ThreadRecord]:
        found = sorted((t for t in self._threads.values() if query.matches(t)), key=_thread_id)
        found.sort(key=lambda t: getattr(t, query.sort_by), reverse=query.sort_order == "desc")
        return found[offset : offset + limit]

    async def count_threads(self, query: ThreadQuery) -> int:
        return sum(1 for t in self._threads.values() if query.matches(t))

    async def update_thread(
        self, thread_id: str, metadata: dict[str, Any], ttl_minutes: float | None = None
    ) -> ThreadRecord | None:
        """The benchmark backend keeps a TTL but never sweeps (it lives as long as a run)."""
        if record := self._threads.get(thread_id):
            apply_thread_update(record, metadata, ttl_minutes)
        return record

    async def copy_thread(self, source_id: str, target_id: str) -> ThreadRecord:
        await self.checkpointer.acopy_thread(source_id, target_id)
        source = self._threads[source_id]
        record, _ = await self.create_thread(target_id, dict(source.metadata), "do_nothing")
        return record

    async def delete_thread(self, thread_id: str) -> bool:
        await self.checkpointer.adelete_thread(thread_id)
        self.forget_thread(thread_id)
        return self._threads.pop(thread_id, None) is not None

    async def set_thread_error(self, thread_id: str, error: str) -> None:
        if record := self._threads.get(thread_id):
            record.status, record.error = "error", error

    async def mark_interrupted(self, thread_id: str) -> None:
        if record := self._threads.get(thread_id):
            record.updated_at, record.status, record.error = utcnow_iso(), "interrupted", None

    async def touch(self, thread_id: str) -> None:
        if record := self._threads.get(thread_id):
            record.updated_at, record.status, record.error = utcnow_iso(), "idle", None

    async def prune_threads(self, thread_ids: list[str], strategy: PruneStrategy) -> int:
        if strategy == "delete":
            return sum([await self.delete_thread(t) for t in thread_ids])
        await self.checkpointer.aprune(thread_ids, strategy="keep_latest")
        return len(thread_ids)

    @property
    def leads_maintenance(self) -> bool:
        return True  # one worker's own store: it leads itself

    async def start(self) -> None:
        """Nothing to open or maintain in memory."""

    async def check_ready(self) -> None:
        return None

    def refresh_gauges(self) -> None:
        """Nothing on disk to measure."""

    def info(self) -> dict[str, Any]:
        return {"backend": self.backend}

    async def aclose(self) -> None:
        self.guard.close()
