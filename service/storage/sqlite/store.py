"""langgraph's SQLite store in the checkpoint file, on this service's SQLite library.

Each batch of store operations opens its own connection with `driver.connect` (the
fixed library, the production pragmas, the busy timeout) and closes it after, on a
worker thread. Store operations are few (a customer's profile read or written now and
then), and a connection held open would keep a read-only view of the file's shared
memory alive after a read-only spell ends, which the checkpointer's own connections
must drop together to recover (see `executor._reopen_writer`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from langgraph.store.base import BaseStore, Op, Result
from langgraph.store.sqlite import SqliteStore

from service.settings import Settings
from service.storage.sqlite.driver import OperationalError, connect
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


class SqliteStoreOnDemand(BaseStore):
    """SqliteStore, one connection per batch of operations."""

    supports_ttl = True

    def __init__(self, path: Path, settings: Settings) -> None:
        self.path = path
        self.settings = settings
        self.ttl_config = store_ttl(settings)

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        conn = connect(self.path, self.settings)
        try:
            store = SqliteStore(conn, ttl=self.ttl_config)
            store.is_setup = True  # made before the workers started
            return store.batch(ops)
        finally:
            conn.close()

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        return await asyncio.to_thread(self.batch, list(ops))


def open_sqlite_store(path: Path, settings: Settings) -> SharedStore:
    """This worker's store."""
    inner = SqliteStoreOnDemand(path, settings)
    return SharedStore(inner, (OperationalError,), settings.busy_retry_after_s)
