"""Connections and transactions for one worker's SQLite checkpointer.

One reader and one writer connection, each with its own thread. Writes take the
write lock up front (`BEGIN IMMEDIATE`), pass this service's cross-process write
gate, and roll back on any error. An operation that can start at once runs right
on the event loop; one that would have to wait runs on its connection's thread.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from pathlib import Path
from time import perf_counter
from typing import Any, TypeVar

from service.observability import metrics
from service.settings import Settings
from service.storage.errors import StorageBusyError, StorageUnavailableError
from service.storage.sqlite.driver import (
    FAULT_MESSAGES,
    DatabaseError,
    connect,
    is_busy_error,
    storage_fault,
)
from service.storage.sqlite.write_gate import WriteGate, WriteTicket

T = TypeVar("T")
log = logging.getLogger(__name__)
BACKEND = "sqlite"


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


class SqliteExecutor:
    """Runs a saver's statements: reads on `conn`, writes in transactions on `writer`.

    A mixin for a `SqliteSaver`, whose `conn` and `lock` are the reader connection
    and its lock; `SqliteExecutor.__init__` adds the writer, the gate and the threads.
    """

    conn: Any
    lock: threading.Lock

    def __init__(self, path: Path | str, settings: Settings) -> None:
        self.path = Path(path)
        self.settings = settings
        self.writer = self._connect_writer()
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
        # Each PRAGMA answers a row: read it, so no statement is left active.
        cur.execute("PRAGMA busy_timeout=0").fetchall()
        try:
            yield
        except DatabaseError as exc:
            if is_busy_error(exc):
                raise _WouldBlock from exc
            raise
        finally:
            cur.execute(self._restore_busy_timeout).fetchall()

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
