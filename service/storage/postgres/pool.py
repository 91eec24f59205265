"""PostgreSQL connections: pools per worker, and database errors mapped to HTTP 503.

Every connection runs in autocommit with `prepare_threshold=None` (no server-side
prepared statements), so the pools also work behind pgbouncer in transaction
mode. Rows come back as dicts, as langgraph-checkpoint-postgres requires.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg import AsyncConnection, errors
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from service.settings import Settings
from service.storage.errors import StorageBusyError, StorageUnavailableError

# Failures that a retry of the same request may not hit: lock or serialization
# conflicts and cancelled statements. Every other OperationalError is an outage.
_BUSY = (errors.SerializationFailure, errors.DeadlockDetected, errors.LockNotAvailable)


def application_name(role: str) -> str:
    """Shows in pg_stat_activity which worker (pid) holds a connection, and for what."""
    return f"booking-agent:{role}:{os.getpid()}"


def connection_kwargs(settings: Settings, role: str) -> dict[str, Any]:
    return {
        "autocommit": True,
        "prepare_threshold": None,
        "row_factory": dict_row,
        "application_name": application_name(role),
        "connect_timeout": max(1, round(settings.postgres_pool_timeout_s)),
    }


def new_pool(
    settings: Settings,
    role: str,
    *,
    url: str | None = None,
    min_size: int | None = None,
    max_size: int | None = None,
    reset: Callable[[AsyncConnection[Any]], Awaitable[None]] | None = None,
) -> AsyncConnectionPool:
    """A closed pool (open it with `await pool.open()` inside the worker's event loop).

    `check` tests each connection as it is handed out, so connections broken by a
    database restart are replaced instead of failing a request.
    """
    return AsyncConnectionPool(
        url or settings.database_url,
        kwargs=connection_kwargs(settings, role),
        min_size=settings.postgres_pool_min_size if min_size is None else min_size,
        max_size=max_size or settings.postgres_pool_max_size,
        check=AsyncConnectionPool.check_connection,
        reset=reset,
        timeout=settings.postgres_pool_timeout_s,
        # Reconnection attempts back off exponentially; giving up after a few seconds
        # restarts them at once on the next request, so recovery lags an outage by
        # seconds, not minutes.
        reconnect_timeout=max(5.0, settings.postgres_pool_timeout_s),
        name=role,
        open=False,
    )


def storage_error(exc: BaseException, retry_after_s: int) -> StorageUnavailableError | None:
    """The 503 a database error stands for, or None when it is a bug to surface."""
    if isinstance(exc, StorageUnavailableError):
        return exc
    if isinstance(exc, _BUSY):
        return StorageBusyError(
            "a conflicting transaction held the rows; retry shortly", retry_after_s=retry_after_s
        )
    if isinstance(exc, psycopg.OperationalError):
        return StorageUnavailableError(
            f"the PostgreSQL database is unavailable ({type(exc).__name__}); retry shortly",
            retry_after_s=retry_after_s,
        )
    return None


@contextmanager
def mapped_errors(retry_after_s: int) -> Iterator[None]:
    try:
        yield
    except psycopg.Error as exc:
        mapped = storage_error(exc, retry_after_s)
        if mapped is None or mapped is exc:
            raise
        raise mapped from exc


@asynccontextmanager
async def pooled(
    pool: AsyncConnectionPool, retry_after_s: int, *, timeout: float | None = None
) -> AsyncIterator[AsyncConnection]:
    """A connection from the pool; outages and pool timeouts become StorageUnavailableError."""
    with mapped_errors(retry_after_s):
        async with pool.connection(timeout=timeout) as conn:
            yield conn


def redacted(url: str) -> str:
    """host:port/dbname of a URL, without user or password, for /info and logs."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{host}{port}{parts.path or ''}"


def pool_stats(pool: AsyncConnectionPool) -> dict[str, int]:
    stats = pool.get_stats()
    size = stats.get("pool_size", 0)
    return {
        "connections": size,
        "in_use": max(0, size - stats.get("pool_available", 0)),
        "waiting": stats.get("requests_waiting", 0),
        "max_size": stats.get("pool_max", 0),
    }
