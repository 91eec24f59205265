"""langgraph's SQLite store in the checkpoint file, on this service's SQLite library.

The store's connection is made by `driver.connect` (the fixed library, the production
pragmas, a busy timeout) and handed to aiosqlite, so the store never links the stock
`sqlite3` with its WAL-reset race.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiosqlite
from langgraph.store.sqlite import AsyncSqliteStore, SqliteStore

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


async def open_sqlite_store(path: Path, settings: Settings) -> SharedStore:
    """This worker's store (its own connection, in aiosqlite's thread)."""
    conn = await aiosqlite.Connection(lambda: connect(path, settings), iter_chunk_size=64)
    store = AsyncSqliteStore(conn, ttl=store_ttl(settings))
    await store.setup()  # the tables exist: this registers the namespace matcher only
    return SharedStore(store, (OperationalError,), settings.busy_retry_after_s, close=conn.close)
