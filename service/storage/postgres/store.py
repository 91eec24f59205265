"""langgraph's PostgreSQL store in the checkpoint database, on the checkpoint pool."""

from __future__ import annotations

from typing import Any

import psycopg
from langgraph.store.postgres import AsyncPostgresStore, PostgresStore
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from service.settings import Settings
from service.storage.store import SharedStore, store_ttl


def init_postgres_store(conn: Any) -> None:
    """Create or upgrade the store's tables (an autocommit connection, under the schema
    lock); before the workers start."""
    PostgresStore(conn).setup()


async def sweep_postgres_store(pool: AsyncConnectionPool) -> int:
    """Delete the expired items; how many were."""
    return await AsyncPostgresStore(pool).sweep_ttl()


def open_postgres_store(pool: AsyncConnectionPool, settings: Settings) -> SharedStore:
    """This worker's store, on the pool its checkpoints use (autocommit, dict rows)."""
    store = AsyncPostgresStore(pool, ttl=store_ttl(settings))
    transient = (psycopg.OperationalError, PoolTimeout)
    return SharedStore(store, transient, settings.busy_retry_after_s)
