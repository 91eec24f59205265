"""Benchmark-only backend: langgraph-checkpoint-sqlite's `AsyncSqliteSaver` as shipped.

It exists so `loadtest/bench.py` can measure what the tuned backend buys over the
stock saver on the same HTTP workload. Never use it for real traffic: it has
none of the service's multi-process safeguards (no `BEGIN IMMEDIATE`, default
5 s busy timeout, the interpreter's own SQLite, which may carry the WAL-reset
race, and a connection that can keep a failed transaction open).

The saver is built on exactly the connection `AsyncSqliteSaver.from_conn_string`
opens (`aiosqlite.connect(path)`, no options, no PRAGMAs). It is constructed
rather than entered as a context manager because the backend factory is
synchronous; aiosqlite starts the connection on first use, in the saver's own
`setup()`. The only additions are timers and counters on `aput`/`aput_writes`,
so the benchmark reads the same metrics for both SQLite backends.

Thread records live in a small `threads` table in the same file, written on the
saver's connection under its lock, one commit per change, as an application
built on the stock saver would.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from time import perf_counter
from typing import Any

import aiosqlite
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.store.memory import InMemoryStore

from service.observability import metrics
from service.settings import Settings
from service.storage.base import IfExists, PruneStrategy, ThreadQuery, ThreadRecord
from service.storage.bench.runs import InMemoryRuns
from service.storage.errors import ThreadExistsError, UnsupportedByBackendError
from service.storage.locks import FileLockGuard
from service.storage.records import (
    THREAD_COLUMNS,
    UPDATE_THREAD_SQL,
    apply_thread_update,
    search_order,
    search_where,
    sqlite_filter,
    thread_record,
    utcnow_iso,
)
from service.storage.sqlite.backend import lock_path_for, set_file_gauges, sqlite_file_sizes

BACKEND = "sqlite-stock"
_THREADS_TABLE = """
CREATE TABLE IF NOT EXISTS threads (
    thread_id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL DEFAULT 'idle',
    error TEXT,
    ttl_minutes REAL
)
"""


class MeteredAsyncSqliteSaver(AsyncSqliteSaver):
    """The stock saver, unchanged, with the service's write metrics around it."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        super().__init__(conn)
        self._put_seconds = metrics.CHECKPOINT_OP_SECONDS.labels(operation="put", backend=BACKEND)
        self._writes_seconds = metrics.CHECKPOINT_OP_SECONDS.labels(
            operation="put_writes", backend=BACKEND
        )
        self._tx_total = metrics.WRITE_TRANSACTIONS.labels(backend=BACKEND)

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        start = perf_counter()
        try:
            result = await super().aput(config, checkpoint, metadata, new_versions)
        finally:
            self._put_seconds.observe(perf_counter() - start)
        self._tx_total.inc()  # the stock saver commits once per aput
        return result

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        start = perf_counter()
        try:
            await super().aput_writes(config, writes, task_id, task_path)
        finally:
            self._writes_seconds.observe(perf_counter() - start)
        self._tx_total.inc()  # and once per aput_writes


class StockSqlitePersistence(InMemoryRuns):
    """One worker's view of the database through the stock async saver (its run records
    stay in the worker's memory: the benchmark measures the saver, not them)."""

    backend = BACKEND

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings
        self.path = Path(settings.checkpoints_db_path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = aiosqlite.connect(str(self.path))
        self.checkpointer = MeteredAsyncSqliteSaver(self.conn)
        self.store = InMemoryStore()  # benchmarks measure checkpoints only
        self.guard = FileLockGuard(lock_path_for(self.path))
        self._tx_total = metrics.WRITE_TRANSACTIONS.labels(backend=BACKEND)
        self._threads_ready = False

    async def _ready(self) -> None:
        """The saver's own setup, then the threads table (once per worker)."""
        saver = self.checkpointer
        await saver.setup()
        if self._threads_ready:
            return
        async with saver.lock:
            await self.conn.execute(_THREADS_TABLE)
            await self.conn.commit()
        self._threads_ready = True

    async def _write(self, sql: str, params: Sequence[Any]) -> int:
        await self._ready()
        async with self.checkpointer.lock:
            async with self.conn.execute(sql, params) as cursor:
                changed = cursor.rowcount
            await self.conn.commit()
        self._tx_total.inc()
        return changed

    async def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        await self._ready()
        async with self.checkpointer.lock, self.conn.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    # --- threads --------------------------------------------------------------------
    async def create_thread(
        self,
        thread_id: str,
        metadata: dict[str, Any],
        if_exists: IfExists,
        ttl_minutes: float | None = None,
    ) -> tuple[ThreadRecord, bool]:
        now = utcnow_iso()
        created = (
            await self._write(
                "INSERT OR IGNORE INTO threads (thread_id, created_at, updated_at, metadata, "
                "ttl_minutes) VALUES (?, ?, ?, ?, ?)",
                (thread_id, now, now, json.dumps(metadata, ensure_ascii=False), ttl_minutes),
            )
            == 1
        )
        if not created and if_exists == "raise":
            raise ThreadExistsError(thread_id)
        record = await self.get_thread(thread_id)
        assert record is not None
        return record, created

    async def get_thread(self, thread_id: str) -> ThreadRecord | None:
        rows = await self._read(
            f"SELECT {THREAD_COLUMNS} FROM threads WHERE thread_id = ?", (thread_id,)
        )
        return thread_record(*rows[0]) if rows else None

    async def touch(self, thread_id: str) -> None:
        """Called by the run service after each successful run: one more commit."""
        await self._write(
            "UPDATE threads SET updated_at = ?, status = 'idle', error = NULL WHERE thread_id = ?",
            (utcnow_iso(), thread_id),
        )

    async def search_threads(
        self, query: ThreadQuery, limit: int, offset: int
    ) -> list[ThreadRecord]:
        clause, params = search_where(query, sqlite_filter, "?")
        rows = await self._read(
            f"SELECT {THREAD_COLUMNS} FROM threads {clause} {search_order(query)} LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return [thread_record(*row) for row in rows]

    async def count_threads(self, query: ThreadQuery) -> int:
        clause, params = search_where(query, sqlite_filter, "?")
        [(count,)] = await self._read(f"SELECT count(*) FROM threads {clause}", params)
        return int(count)

    async def update_thread(
        self, thread_id: str, metadata: dict[str, Any], ttl_minutes: float | None = None
    ) -> ThreadRecord | None:
        """The benchmark backend keeps a TTL but never sweeps it."""
        record = await self.get_thread(thread_id)
        if record is None:
            return None
        await self._write(UPDATE_THREAD_SQL, apply_thread_update(record, metadata, ttl_minutes))
        return record

    async def copy_thread(self, source_id: str, target_id: str) -> ThreadRecord:
        """The stock saver cannot copy a thread; the benchmark never asks it to."""
        raise UnsupportedByBackendError("copying a thread (the stock SQLite benchmark backend)")

    async def delete_thread(self, thread_id: str) -> bool:
        existed = await self._write("DELETE FROM threads WHERE thread_id = ?", (thread_id,)) > 0
        await self.checkpointer.adelete_thread(thread_id)
        self.forget_thread(thread_id)
        return existed

    async def set_thread_error(self, thread_id: str, error: str) -> None:
        await self._write(
            "UPDATE threads SET status = 'error', error = ?, updated_at = ? WHERE thread_id = ?",
            (error[:2000], utcnow_iso(), thread_id),
        )

    async def mark_interrupted(self, thread_id: str) -> None:
        await self._write(
            "UPDATE threads SET status = 'interrupted', error = NULL, updated_at = ? "
            "WHERE thread_id = ?",
            (utcnow_iso(), thread_id),
        )

    async def prune_threads(self, thread_ids: list[str], strategy: PruneStrategy) -> int:
        pruned = 0
        for thread_id in thread_ids:
            if strategy == "delete":
                pruned += int(await self.delete_thread(thread_id))
                continue
            await self._write(
                "DELETE FROM checkpoints WHERE thread_id = ?1 AND checkpoint_id NOT IN ("
                "SELECT max(checkpoint_id) FROM checkpoints WHERE thread_id = ?1 "
                "GROUP BY checkpoint_ns)",
                (thread_id,),
            )
            pruned += 1
        return pruned

    @property
    def leads_maintenance(self) -> bool:
        return True  # one worker's own store: it leads itself

    async def start(self) -> None:
        """No maintenance: the stock saver keeps every checkpoint."""

    # --- health and facts -------------------------------------------------------------
    async def check_ready(self) -> None:
        await self._read("SELECT count(*) FROM threads LIMIT 1")

    def refresh_gauges(self) -> None:
        set_file_gauges(self.path)

    def info(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "database": str(self.path),
            "sqlite_version": aiosqlite.sqlite_version,
            "sqlite_driver": "sqlite3 (aiosqlite)",
            "benchmark_only": True,
            "files": sqlite_file_sizes(self.path),
        }

    async def aclose(self) -> None:
        await self.conn.close()
        self.guard.close()
