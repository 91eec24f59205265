"""The production SQLite checkpointer: one reader and one writer connection per worker.

It keeps langgraph-checkpoint-sqlite's queries and table layout (reads, `list`,
`DeltaChannel` history) and changes what matters when several processes share one
WAL file:

* Writes take the write lock up front (`BEGIN IMMEDIATE`) and roll back on any
  error, so no transaction is ever left open. A lock held past `busy_timeout`
  becomes `StorageBusyError` (HTTP 503 + Retry-After) and the connection stays
  usable. The stock async saver can keep a stale transaction after such a timeout
  and then fail every later write on that worker.
* Reads run in autocommit on their own connection, so they never wait behind a
  write in this worker and never hold an old snapshot.
* The event loop never waits for a lock. A point read or a one-transaction write runs
  right on the loop when it can start at once (its connection free, the write gate
  free, SQLite's lock had with no busy wait): then it costs its statements and
  nothing else. Anything that would have to wait runs on the connection's dedicated
  thread instead, where waiting is harmless. The thread hop alone cost more CPU than
  a whole uncontended write.
* A root checkpoint and its thread's `updated_at` are written in one transaction,
  so a turn costs one write transaction with `durability="exit"`.
* The extended saver capabilities: `delete_for_runs`, `copy_thread`, `prune`.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from pathlib import Path
from time import perf_counter
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
    SerializerProtocol,
    get_checkpoint_id,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.utils import load_pending_writes, pending_writes_sql

from service.observability import metrics
from service.settings import Settings
from service.storage.errors import StorageBusyError, StorageUnavailableError
from service.storage.records import check_prune_strategy, utcnow_iso
from service.storage.sqlite.decoded_cache import DecodedCheckpointCache
from service.storage.sqlite.driver import (
    FAULT_MESSAGES,
    DatabaseError,
    connect,
    is_busy_error,
    storage_fault,
)
from service.storage.sqlite.maintenance import delete_thread_rows, prune_rows
from service.storage.sqlite.serde import MessageMemoSerializer
from service.storage.sqlite.write_gate import WriteGate, WriteTicket

T = TypeVar("T")
log = logging.getLogger(__name__)
BACKEND = "sqlite"

_THREAD_TOUCH = """
INSERT INTO threads (thread_id, created_at, updated_at) VALUES (?, ?, ?)
ON CONFLICT (thread_id) DO UPDATE SET
    updated_at = excluded.updated_at, status = 'idle', error = NULL
"""
_RUN_ID = "json_extract(CAST(metadata AS TEXT), '$.run_id')"


class _AbandonedWrite(StorageBusyError):
    """The waiting caller gave up before this write started; it never runs."""


class _WouldBlock(Exception):
    """An attempt on the event loop found a lock taken; nothing was done.

    `soon`: another worker holds the write gate, for one short transaction, so trying
    again shortly is worth it. Otherwise the operation moves to its connection's thread.
    """

    def __init__(self, *, soon: bool = False) -> None:
        super().__init__()
        self.soon = soon


# How long a write keeps trying on the event loop while another write of this service
# holds the lock (one short transaction, usually well under a millisecond) before it
# queues on its connection's thread.
_LOOP_SPIN_S = 0.001


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No garbage collection starts inside a write transaction.

    One that did would hold the write lock, and every worker's writes, for its whole
    length (a full one took 200 ms in a busy worker); it runs after the commit
    instead. Only the holder of a saver's `_write_lock` switches the collector, and
    only between `BEGIN` and the end of the transaction (never while waiting for a
    lock), so writers never interleave their switching.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


class SqliteCheckpointer(SqliteSaver):
    """Async-first SqliteSaver tuned for many processes on one WAL database."""

    backend = BACKEND

    def __init__(
        self,
        path: Path | str,
        settings: Settings,
        *,
        serde: SerializerProtocol | None = None,
        keep_last: int | None = None,
    ) -> None:
        super().__init__(connect(path, settings), serde=serde or MessageMemoSerializer())
        self.keep_last = keep_last
        self.path = Path(path)
        self.settings = settings
        self.writer = self._connect_writer()
        self.is_setup = True  # the schema belongs to sqlite_schema.init_database
        self.retry_after_s = settings.busy_retry_after_s
        # A file opened without write permission gives a read-only connection for good:
        # remember it, so the first write after permission returns reopens the writer.
        self.write_fault: str | None = None if os.access(self.path, os.W_OK) else "readonly"
        self._write_lock = threading.Lock()
        self._gate = WriteGate(self.path.with_name(self.path.name + ".write-gate"))
        self._ticket = threading.local()
        self._write_wait_s = settings.sqlite_busy_timeout_ms / 1000
        self._restore_busy_timeout = f"PRAGMA busy_timeout={settings.sqlite_busy_timeout_ms}"
        # Set while an operation runs on the event loop's thread, where nothing may wait.
        self._on_loop = threading.local()
        # Writes handed to the writer thread and not finished: while there are any, later
        # writes queue behind them instead of overtaking them on the loop.
        self._queued_writes = 0
        self._loop_first = settings.sqlite_loop_first
        self._read_pool = ThreadPoolExecutor(1, thread_name_prefix="sqlite-read")
        self._write_pool = ThreadPoolExecutor(1, thread_name_prefix="sqlite-write")
        self._op_seconds = {
            op: metrics.CHECKPOINT_OP_SECONDS.labels(operation=op, backend=BACKEND)
            for op in metrics.CHECKPOINT_OPERATIONS
        }
        self._tx_total = metrics.WRITE_TRANSACTIONS.labels(backend=BACKEND)
        self._deferred = {
            op: metrics.STORAGE_DEFERRED_OPERATIONS.labels(operation=op, backend=BACKEND)
            for op in metrics.LOOP_FIRST_OPERATIONS
        }
        self._bytes_total = metrics.CHECKPOINT_WRITE_BYTES.labels(backend=BACKEND)
        self._payload_bytes = metrics.CHECKPOINT_PAYLOAD_BYTES.labels(backend=BACKEND)
        self.decoded = DecodedCheckpointCache(settings.checkpoint_cache_mb * 1024 * 1024, BACKEND)

    # --- connections and transactions -----------------------------------------------
    def setup(self) -> None:
        """No-op: `init_database` owns the schema (see sqlite_schema)."""

    @contextmanager
    def cursor(self, transaction: bool = True) -> Iterator[Any]:
        if transaction:
            with self.write_transaction() as cur:
                yield cur
            return
        on_loop = getattr(self._on_loop, "active", False)
        if not self.lock.acquire(blocking=not on_loop):
            raise _WouldBlock  # the reader thread is busy: wait there
        try:
            cur = self.conn.cursor()
            try:
                with self._without_busy_wait(cur) if on_loop else nullcontext():
                    yield cur
            finally:
                cur.close()
        finally:
            self.lock.release()

    @contextmanager
    def _without_busy_wait(self, cur: Any) -> Iterator[None]:
        """SQLite answers SQLITE_BUSY at once instead of sleeping in its busy handler;
        that answer becomes `_WouldBlock`."""
        cur.execute("PRAGMA busy_timeout=0")
        try:
            yield
        except DatabaseError as exc:
            if is_busy_error(exc):
                raise _WouldBlock from exc
            raise
        finally:
            cur.execute(self._restore_busy_timeout)

    @contextmanager
    def write_transaction(self) -> Iterator[Any]:
        """`BEGIN IMMEDIATE` … `COMMIT`; `ROLLBACK` on any error.

        Storage faults become `StorageUnavailableError` (busy: `StorageBusyError`) and
        are remembered until a write succeeds again, so readiness can report them.
        On the event loop it only starts if every lock can be had at once
        (`_WouldBlock` otherwise, before anything is written).
        """
        on_loop = getattr(self._on_loop, "active", False)
        with self._write_locks(on_loop):
            if not on_loop:
                ticket: WriteTicket | None = getattr(self._ticket, "current", None)
                if ticket is not None and not ticket.start():
                    raise StorageBusyError(FAULT_MESSAGES["busy"], retry_after_s=self.retry_after_s)
                if self.write_fault == "readonly":
                    self._reopen_writer()
            cur = self.writer.cursor()
            try:
                self._begin(cur, on_loop)
                try:
                    with _collector_paused():
                        yield cur
                        cur.execute("COMMIT")
                except BaseException:
                    self._rollback()
                    raise
            except DatabaseError as exc:
                unavailable = self._unavailable(exc)
                if unavailable is None:
                    raise
                raise unavailable from exc
            finally:
                cur.close()
        self.write_fault = None
        self._tx_total.inc()

    @contextmanager
    def _write_locks(self, on_loop: bool) -> Iterator[None]:
        """This worker's writer connection, then the cross-process gate.

        On the event loop it never waits: `_WouldBlock` if either is taken.
        """
        if on_loop:
            if self.write_fault:
                raise _WouldBlock
            if not self._write_lock.acquire(blocking=False):
                raise _WouldBlock  # this worker's writer thread is busy: queue behind it
            if not self._gate.try_acquire():
                self._write_lock.release()
                raise _WouldBlock(soon=True)
        else:
            self._write_lock.acquire()
            self._gate.acquire()
        try:
            yield
        finally:
            self._gate.release()
            self._write_lock.release()

    def _begin(self, cur: Any, on_loop: bool) -> None:
        if not on_loop:
            cur.execute("BEGIN IMMEDIATE")
            return
        # The gate keeps this service's writers out; a writer from outside it (the
        # maintenance sweep, a backup, a shell) may still hold SQLite's lock.
        with self._without_busy_wait(cur):
            cur.execute("BEGIN IMMEDIATE")

    def _connect_writer(self) -> Any:
        conn = connect(self.path, self.settings)
        conn.execute(f"PRAGMA wal_autocheckpoint={self.settings.writer_wal_autocheckpoint()}")
        return conn

    def _reopen_writer(self) -> None:
        """A connection opened while the file was read-only stays read-only: open anew.

        SQLite shares one shared-memory (-shm) mapping per file among a process's
        connections, and it keeps the read-only mode of the first opener. So both
        connections are closed before the new ones open.
        """
        if not os.access(self.path, os.W_OK):
            return
        with self.lock:
            self.writer.close()
            self.conn.close()
            self.conn = connect(self.path, self.settings)
            self.writer = self._connect_writer()

    def _rollback(self) -> None:
        if not self.writer.in_transaction:
            return
        try:
            self.writer.execute("ROLLBACK")
        except DatabaseError:
            log.warning("ROLLBACK failed; SQLite rolls back when the connection is reused")

    def _unavailable(self, exc: BaseException) -> StorageUnavailableError | None:
        kind = storage_fault(exc)
        if kind is None:
            return None
        if kind == "busy":
            return StorageBusyError(FAULT_MESSAGES[kind], retry_after_s=self.retry_after_s)
        self.write_fault = kind
        return StorageUnavailableError(FAULT_MESSAGES[kind], retry_after_s=self.retry_after_s)

    def probe_write(self) -> None:
        """A tiny real write, used by readiness after a storage fault to see if it is over."""
        with self.write_transaction() as cur:
            cur.execute(
                "INSERT OR REPLACE INTO service_leases (name, holder, expires_at) "
                "VALUES ('readiness-probe', ?, julianday('now'))",
                (str(os.getpid()),),
            )

    def read_one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self.cursor(transaction=False) as cur:
            return cur.execute(sql, params).fetchone()

    def read_all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self.cursor(transaction=False) as cur:
            return cur.execute(sql, params).fetchall()

    def _timed(
        self,
        operation: str,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        start: float | None = None,
    ) -> T:
        start = perf_counter() if start is None else start
        done = True
        try:
            return fn(*args)
        except _WouldBlock:
            done = False  # it has not run: its time is measured where it does
            raise
        except _AbandonedWrite:
            raise  # its caller already answered 503 and counted it
        except StorageBusyError:
            metrics.STORAGE_BUSY_ERRORS.labels(backend=BACKEND, operation=operation).inc()
            raise
        except DatabaseError as exc:
            unavailable = self._unavailable(exc)
            if unavailable is None:
                raise
            if isinstance(unavailable, StorageBusyError):
                metrics.STORAGE_BUSY_ERRORS.labels(backend=BACKEND, operation=operation).inc()
            raise unavailable from exc
        finally:
            if done:
                self._op_seconds[operation].observe(perf_counter() - start)

    def _on_loop_now(
        self, operation: str, fn: Callable[..., T], args: tuple[Any, ...], start: float
    ) -> T:
        """Run `fn` here, on the event loop; `_WouldBlock` if it would have to wait."""
        self._on_loop.active = True
        try:
            return self._timed(operation, fn, args, start)
        finally:
            self._on_loop.active = False

    async def run_read(
        self, operation: str, fn: Callable[..., T], *args: Any, point: bool = False
    ) -> T:
        """A read on the reader connection's thread; a `point` read (a few rows by
        key) runs on the event loop when the connection is free."""
        if point and self._loop_first:
            try:
                return self._on_loop_now(operation, fn, args, perf_counter())
            except _WouldBlock:
                self._deferred[operation].inc()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._read_pool, self._timed, operation, fn, args)

    async def run_write(
        self, operation: str, fn: Callable[..., T], *args: Any, single: bool = False
    ) -> T:
        """Queue a write; 503 if it cannot start within busy_timeout (nothing written).

        A `single` write (`fn` opens one transaction, and has no effect outside it)
        runs on the event loop when no earlier write of this worker is still queued on
        the writer thread and it can start without waiting. While another write of
        this service holds the lock it tries again for up to `_LOOP_SPIN_S`, yielding
        the CPU in between: on the writer thread it would win the GIL back after each
        statement, and under load those hand-offs cost more than this wait.

        Once a write has started it runs to its end (bounded by SQLite's busy_timeout),
        so a client is never told "not written" about a write that then lands.
        """
        if single and self._loop_first and not self._queued_writes:
            start = perf_counter()
            while True:
                try:
                    return self._on_loop_now(operation, fn, args, start)
                except _WouldBlock as exc:
                    if not exc.soon or not self._gate_freed(start + _LOOP_SPIN_S):
                        self._deferred[operation].inc()
                        break
        loop = asyncio.get_running_loop()
        ticket = WriteTicket()
        future = loop.run_in_executor(
            self._write_pool, self._timed_ticket, ticket, operation, fn, args
        )
        self._queued_writes += 1
        future.add_done_callback(self._write_finished)
        try:
            return await asyncio.wait_for(asyncio.shield(future), self._write_wait_s)
        except TimeoutError:
            if ticket.cancel():
                metrics.STORAGE_BUSY_ERRORS.labels(backend=BACKEND, operation=operation).inc()
                raise StorageBusyError(
                    FAULT_MESSAGES["busy"], retry_after_s=self.retry_after_s
                ) from None
            return await future

    def _gate_freed(self, deadline: float) -> bool:
        """Wait, yielding the CPU, until no other process holds the write gate."""
        while perf_counter() < deadline:
            os.sched_yield()
            if self._gate.is_free():
                return True
        return False

    def _write_finished(self, _: asyncio.Future[Any]) -> None:
        self._queued_writes -= 1

    def _timed_ticket(
        self, ticket: WriteTicket, operation: str, fn: Callable[..., T], args: tuple[Any, ...]
    ) -> T:
        self._ticket.current = ticket
        try:
            return self._timed(operation, fn, args)
        finally:
            self._ticket.current = None

    def close(self) -> None:
        self._read_pool.shutdown(wait=True)
        self._write_pool.shutdown(wait=True)
        self.conn.close()
        self.writer.close()
        self._gate.close()

    # --- sync writes --------------------------------------------------------------
    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        configurable = config["configurable"]
        thread_id = str(configurable["thread_id"])
        checkpoint_ns = configurable.get("checkpoint_ns", "")
        type_, blob = self.serde.dumps_typed(checkpoint)
        meta = json.dumps(get_checkpoint_metadata(config, metadata), ensure_ascii=False).encode(
            "utf-8", "ignore"
        )
        with self.write_transaction() as cur:
            cur.execute(
                "INSERT OR REPLACE INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, "
                "parent_checkpoint_id, type, checkpoint, metadata) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    thread_id,
                    checkpoint_ns,
                    checkpoint["id"],
                    configurable.get("checkpoint_id"),
                    type_,
                    blob,
                    meta,
                ),
            )
            if checkpoint_ns == "":
                now = utcnow_iso()
                cur.execute(_THREAD_TOUCH, (thread_id, now, now))
                if self.keep_last:
                    self._compact(cur, thread_id, self.keep_last)
        self._bytes_total.inc(len(blob) + len(meta))
        self._payload_bytes.observe(len(blob))
        self.decoded.put(thread_id, checkpoint_ns, checkpoint, len(blob))
        return {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": checkpoint_ns,
                "checkpoint_id": checkpoint["id"],
            }
        }

    @staticmethod
    def _compact(cur: Any, thread_id: str, keep: int) -> None:
        """Drop root checkpoints older than the newest `keep`, with their writes.

        Every checkpoint stores the whole conversation, so keeping them all makes a
        thread's size grow with the square of its length. The latest checkpoint
        always holds every message.
        """
        row = cur.execute(
            "SELECT checkpoint_id FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = '' "
            "ORDER BY checkpoint_id DESC LIMIT 1 OFFSET ?",
            (thread_id, keep - 1),
        ).fetchone()
        if row is None:
            return
        for table in ("checkpoints", "writes"):
            cur.execute(
                f"DELETE FROM {table} WHERE thread_id = ? AND checkpoint_ns = '' "
                "AND checkpoint_id < ?",
                (thread_id, row[0]),
            )

    # --- reads --------------------------------------------------------------------
    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The stock query, but the latest checkpoint decodes from this worker's copy.

        The row is always read (so another worker's newer checkpoint is seen); its blob
        is left out when its id is the one this worker already holds decoded.
        """
        configurable = config["configurable"]
        thread_id = str(configurable["thread_id"])
        checkpoint_ns = configurable.get("checkpoint_ns", "")
        checkpoint_id = get_checkpoint_id(config)
        known = self.decoded.known_id(thread_id, checkpoint_ns) if self.decoded.enabled else None
        columns = (
            "checkpoint_id, parent_checkpoint_id, type, metadata, length(checkpoint), "
            "CASE WHEN checkpoint_id = ? THEN NULL ELSE checkpoint END"
        )
        with self.cursor(transaction=False) as cur:
            if checkpoint_id:
                cur.execute(
                    f"SELECT {columns} FROM checkpoints WHERE thread_id = ? "
                    "AND checkpoint_ns = ? AND checkpoint_id = ?",
                    (known, thread_id, checkpoint_ns, checkpoint_id),
                )
            else:
                cur.execute(
                    f"SELECT {columns} FROM checkpoints WHERE thread_id = ? "
                    "AND checkpoint_ns = ? ORDER BY checkpoint_id DESC LIMIT 1",
                    (known, thread_id, checkpoint_ns),
                )
            row = cur.fetchone()
            if row is None:
                return None
            found_id, parent_id, type_, metadata, size, blob = row
            checkpoint = None
            if blob is None:
                checkpoint = self.decoded.get(thread_id, checkpoint_ns, found_id, size)
            if self.decoded.enabled:
                self.decoded.count(hit=checkpoint is not None)
            if checkpoint is None:
                if blob is None:  # evicted since `known` was read
                    fetched = cur.execute(
                        "SELECT checkpoint FROM checkpoints WHERE thread_id = ? "
                        "AND checkpoint_ns = ? AND checkpoint_id = ?",
                        (thread_id, checkpoint_ns, found_id),
                    ).fetchone()
                    if fetched is None:  # deleted by another worker in between
                        return None
                    blob = fetched[0]
                checkpoint = self.serde.loads_typed((type_, blob))
                if not checkpoint_id:
                    self.decoded.put(thread_id, checkpoint_ns, checkpoint, len(blob))
            cur.execute(
                pending_writes_sql(self._has_task_path), (thread_id, checkpoint_ns, found_id)
            )
            pending = load_pending_writes(cur, self.serde)
        parent = (
            {
                "configurable": {
                    "thread_id": thread_id,
                    "checkpoint_ns": checkpoint_ns,
                    "checkpoint_id": parent_id,
                }
            }
            if parent_id
            else None
        )
        if not checkpoint_id:
            config = {
                "configurable": {
                    "thread_id": thread_id,
                    "checkpoint_ns": checkpoint_ns,
                    "checkpoint_id": found_id,
                }
            }
        return CheckpointTuple(
            config,
            checkpoint,
            json.loads(metadata) if metadata is not None else {},
            parent,
            pending,
        )

    # --- writes ---------------------------------------------------------------------
    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        configurable = config["configurable"]
        verb = "REPLACE" if all(w[0] in WRITES_IDX_MAP for w in writes) else "IGNORE"
        rows = []
        size = 0
        for idx, (channel, value) in enumerate(writes):
            type_, blob = self.serde.dumps_typed(value)
            size += len(blob) if blob else 0
            rows.append(
                (
                    str(configurable["thread_id"]),
                    str(configurable.get("checkpoint_ns", "")),
                    str(configurable["checkpoint_id"]),
                    task_id,
                    task_path,
                    WRITES_IDX_MAP.get(channel, idx),
                    channel,
                    type_,
                    blob,
                )
            )
        with self.write_transaction() as cur:
            cur.executemany(
                f"INSERT OR {verb} INTO writes (thread_id, checkpoint_ns, checkpoint_id, task_id, "
                "task_path, idx, channel, type, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        self._bytes_total.inc(size)

    def delete_thread(self, thread_id: str) -> bool:
        """Remove every checkpoint, write and the thread record, in one transaction.

        Returns whether the thread had a record.
        """
        with self.write_transaction() as cur:
            existed = delete_thread_rows(cur, str(thread_id))
        self.decoded.discard_thread(str(thread_id))
        return existed

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        if not run_ids:
            return
        marks = ",".join("?" * len(run_ids))
        params = [str(run_id) for run_id in run_ids]
        with self.write_transaction() as cur:
            cur.execute(
                "DELETE FROM writes WHERE (thread_id, checkpoint_ns, checkpoint_id) IN ("
                "SELECT thread_id, checkpoint_ns, checkpoint_id FROM checkpoints "
                f"WHERE {_RUN_ID} IN ({marks}))",
                params,
            )
            cur.execute(f"DELETE FROM checkpoints WHERE {_RUN_ID} IN ({marks})", params)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        source, target = str(source_thread_id), str(target_thread_id)
        with self.write_transaction() as cur:
            cur.execute(
                "INSERT OR REPLACE INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, "
                "parent_checkpoint_id, type, checkpoint, metadata) SELECT ?, checkpoint_ns, "
                "checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata "
                "FROM checkpoints WHERE thread_id = ?",
                (target, source),
            )
            cur.execute(
                "INSERT OR REPLACE INTO writes (thread_id, checkpoint_ns, checkpoint_id, task_id, "
                "task_path, idx, channel, type, value) SELECT ?, checkpoint_ns, checkpoint_id, "
                "task_id, task_path, idx, channel, type, value FROM writes WHERE thread_id = ?",
                (target, source),
            )
            now = utcnow_iso()
            cur.execute(
                "INSERT OR IGNORE INTO threads (thread_id, created_at, updated_at, metadata) "
                "SELECT ?, ?, ?, metadata FROM threads WHERE thread_id = ?",
                (target, now, now, source),
            )

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """`keep_latest`: keep the newest checkpoint per namespace; `delete`: keep none.

        One short transaction per thread, so a large prune never holds the write lock
        for long.
        """
        check_prune_strategy(strategy)
        for thread_id in thread_ids:
            self.prune_thread(str(thread_id), keep=1 if strategy == "keep_latest" else 0)

    def prune_thread(self, thread_id: str, *, keep: int) -> int:
        """Keep the newest `keep` checkpoints per namespace (0: none). Returns rows removed."""
        with self.write_transaction() as cur:
            return prune_rows(cur, thread_id, keep)

    # --- async API (what the graph and the HTTP layer use) ------------------------------
    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self.run_read("get", self.get_tuple, config, point=True)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        def collect() -> list[CheckpointTuple]:
            return list(self.list(config, filter=filter, before=before, limit=limit))

        for item in await self.run_read("list", collect):
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await self.run_write(
            "put", self.put, config, checkpoint, metadata, new_versions, single=True
        )

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await self.run_write(
            "put_writes", self.put_writes, config, writes, task_id, task_path, single=True
        )

    async def adelete_thread(self, thread_id: str) -> None:
        await self.run_write("delete", self.delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await self.run_write("delete_for_runs", self.delete_for_runs, list(run_ids))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await self.run_write("copy_thread", self.copy_thread, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        check_prune_strategy(strategy)
        for thread_id in thread_ids:
            await self.run_write(
                "prune",
                lambda tid: self.prune_thread(tid, keep=1 if strategy == "keep_latest" else 0),
                str(thread_id),
            )

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        return await self.run_read(
            "get",
            lambda: self.get_delta_channel_history(config=config, channels=channels),
        )
