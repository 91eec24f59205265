"""langgraph's SQLite store in the checkpoint file, on the checkpointer's own connections.

A batch runs as the checkpointer's reads and writes do: a batch that only reads on
its reader connection (a batch of point reads right on the event loop when the
connection is free), any other batch in one of its write transactions, through the
cross-process write gate, with its fault handling (a file that turns read-only and
back reopens both connections together). A customer's profile is read at the start
of every conversation turn, so a connection opened per batch would be paid per turn.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langgraph.store.base import BaseStore, GetOp, ListNamespacesOp, Op, Result, SearchOp
from langgraph.store.sqlite import SqliteStore

from service.settings import Settings
from service.storage.sqlite.driver import OperationalError, connect
from service.storage.sqlite.executor import SqliteExecutor
from service.storage.store import SharedStore, store_ttl


def init_sqlite_store(path: Path, settings: Settings) -> None:
    """Create or upgrade the store's tables; before the workers start."""
    conn = connect(path, settings)
    try:
        SqliteStore(conn, ttl=store_ttl(settings)).setup()
    finally:
        conn.close()


def sweep_sqlite_store(conn: Any, settings: Settings) -> int:
    """Delete the expired items on the maintenance connection; how many were."""
    return SqliteStore(conn, ttl=store_ttl(settings)).sweep_ttl()


# Whether an item has a TTL that a read restarts (langgraph's `store` table).
_HAS_TTL_SQL = "SELECT 1 FROM store WHERE prefix = ? AND key = ? AND ttl_minutes IS NOT NULL"


class _StoreOnCursor(SqliteStore):
    """SqliteStore's statements on a cursor the executor opened (in its transaction or
    on its reader), instead of the store's own connection and transaction.

    One per connection: making one registers the store's SQL function on the
    connection, which SQLite refuses while a statement is active and which makes the
    connection prepare its cached statements again.
    """

    def __init__(self, conn: Any, ttl: Any) -> None:
        super().__init__(conn, ttl=ttl)
        self.is_setup = True  # made before the workers started
        self._given: Any = None

    @contextmanager
    def _cursor(self, *, transaction: bool = True) -> Iterator[Any]:
        yield self._given


class SqliteStoreOnSaver(BaseStore):
    """SqliteStore on a checkpointer's executor: its connections, locks and write gate."""

    supports_ttl = True

    def __init__(self, executor: SqliteExecutor, settings: Settings) -> None:
        self.executor = executor
        self.ttl_config = store_ttl(settings)
        self._stores: dict[int, tuple[Any, _StoreOnCursor]] = {}
        for conn in (executor.conn, executor.writer):
            self._store_for(conn)

    def _store_for(self, conn: Any) -> _StoreOnCursor:
        """The connection's store (a new one after the executor reopened its connections)."""
        entry = self._stores.get(id(conn))
        if entry is None or entry[0] is not conn:
            live = {id(self.executor.conn), id(self.executor.writer)}
            self._stores = {key: item for key, item in self._stores.items() if key in live}
            entry = (conn, _StoreOnCursor(conn, self.ttl_config))
            self._stores[id(conn)] = entry
        return entry[1]

    def _on(self, cur: Any, ops: list[Op]) -> list[Result]:
        store = self._store_for(cur.connection)
        store._given = cur
        try:
            return store.batch(ops)
        finally:
            store._given = None

    def _refreshes(self, op: Op) -> bool:
        refresh_on_read = bool(self.ttl_config and self.ttl_config.get("refresh_on_read"))
        return isinstance(op, GetOp | SearchOp) and refresh_on_read and bool(op.refresh_ttl)

    def _reads_only(self, ops: list[Op]) -> bool:
        """Nothing to write: no put, and no TTL that reading would refresh."""
        return all(
            isinstance(op, ListNamespacesOp | GetOp | SearchOp) and not self._refreshes(op)
            for op in ops
        )

    def _read(self, ops: list[Op]) -> list[Result]:
        with self.executor.cursor(transaction=False) as cur:
            return self._on(cur, ops)

    def _read_unless_refreshed(self, ops: list[GetOp]) -> list[Result] | None:
        """Gets that would refresh TTLs, read without a write transaction; None when one
        of the items read has a TTL to restart (then the batch is a write after all).
        Most items have none, and a write transaction that changes nothing still takes
        the write lock."""
        with self.executor.cursor(transaction=False) as cur:
            results = self._on(cur, [op._replace(refresh_ttl=False) for op in ops])
            for op in ops:
                if (
                    self._refreshes(op)
                    and cur.execute(_HAS_TTL_SQL, (".".join(op.namespace), op.key)).fetchone()
                ):
                    return None
        return results

    def _write(self, ops: list[Op]) -> list[Result]:
        with self.executor.write_transaction() as cur:
            return self._on(cur, ops)

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        if self._reads_only(ops):
            return self._read(ops)
        if all(isinstance(op, GetOp) for op in ops):
            results = self._read_unless_refreshed(ops)  # type: ignore[arg-type]
            if results is not None:
                return results
        return self._write(ops)

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        point = all(isinstance(op, GetOp) for op in ops)
        if self._reads_only(ops):
            return await self.executor.run_read("store", self._read, ops, point=point)
        if point:
            read = self._read_unless_refreshed
            results = await self.executor.run_read("store", read, ops, point=True)
            if results is not None:
                return results
        return await self.executor.run_write("store", self._write, ops, single=True)


def open_sqlite_store(executor: SqliteExecutor, settings: Settings) -> SharedStore:
    """This worker's store, on its checkpointer's connections."""
    inner = SqliteStoreOnSaver(executor, settings)
    return SharedStore(inner, (OperationalError,), settings.busy_retry_after_s)
