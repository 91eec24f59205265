"""Appointments in PostgreSQL (CHECKPOINTER=postgres), shared by every worker of every host.

The same table and the same partial UNIQUE index as in SQLite (one confirmed
appointment per service and start). A booking transaction first takes one
transaction-level advisory lock, so the read-check-insert of every booking runs
alone, as SQLite's `BEGIN IMMEDIATE` makes it; the index stays as the backstop.
Transaction-level locks also work behind pgbouncer in transaction mode.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors
from psycopg_pool import ConnectionPool

from service.bookings.sqlite import BUSY_MESSAGE, BookingBusyError
from service.settings import Settings
from service.storage.postgres.pool import application_name
from service.storage.postgres.schema import BOOKINGS_LOCK, LOCK_CLASS, connect, schema_lock

POSTGRES_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS appointments (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        confirmation_code TEXT UNIQUE NOT NULL,
        service TEXT NOT NULL,
        starts_at TEXT COLLATE "C" NOT NULL,
        customer_name TEXT NOT NULL,
        contact TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('confirmed', 'cancelled')),
        idempotency_key TEXT UNIQUE,
        created_at TEXT NOT NULL,
        cancelled_at TEXT
    )
    """,
    """
    CREATE UNIQUE INDEX IF NOT EXISTS appointments_one_per_slot
        ON appointments (service, starts_at) WHERE status = 'confirmed'
    """,
    "CREATE INDEX IF NOT EXISTS appointments_by_contact ON appointments (contact, starts_at)",
    "CREATE INDEX IF NOT EXISTS appointments_by_start ON appointments (starts_at)",
)
CODE_CONSTRAINT = "appointments_confirmation_code_key"
# How long a booking waits for another booking's transaction before "busy".
LOCK_TIMEOUT = "10s"
MAX_CONNECTIONS = 4


class _QmarkConnection:
    """Runs BookingStore's `?`-placeholder SQL on a psycopg connection."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.raw = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        return self.raw.execute(sql.replace("?", "%s"), params)


class PostgresBookingDatabase:
    """A small sync pool per process (tools run in threads), opened on first use."""

    def __init__(self, url: str, settings: Settings) -> None:
        self.url = url
        self.settings = settings
        self._pool: ConnectionPool | None = None
        self._pool_pid: int | None = None
        self._lock = threading.Lock()

    def _connections(self) -> ConnectionPool:
        with self._lock:
            # A pool must never cross fork(); a child opens its own.
            if self._pool is None or self._pool_pid != os.getpid():
                self._pool = ConnectionPool(
                    self.url,
                    kwargs={
                        "autocommit": True,
                        "prepare_threshold": None,
                        "application_name": application_name("bookings"),
                        "connect_timeout": max(1, round(self.settings.postgres_pool_timeout_s)),
                    },
                    min_size=0,
                    max_size=min(MAX_CONNECTIONS, self.settings.postgres_pool_max_size),
                    check=ConnectionPool.check_connection,
                    timeout=self.settings.postgres_pool_timeout_s,
                    name="bookings",
                    open=False,
                )
                self._pool.open(wait=False)
                self._pool_pid = os.getpid()
            return self._pool

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        try:
            with self._connections().connection() as conn:
                yield conn
        except (errors.LockNotAvailable, psycopg.OperationalError) as exc:
            raise BookingBusyError(BUSY_MESSAGE) from exc

    @contextmanager
    def write(self) -> Iterator[_QmarkConnection]:
        with self._connection() as conn, conn.transaction():
            conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_CLASS, BOOKINGS_LOCK))
            yield _QmarkConnection(conn)

    @contextmanager
    def read(self) -> Iterator[_QmarkConnection]:
        with self._connection() as conn:
            yield _QmarkConnection(conn)

    def insert_unless_code_taken(self, conn: Any, sql: str, params: Sequence[Any]) -> bool:
        try:
            with conn.raw.transaction():  # a savepoint: a collision leaves the booking intact
                conn.execute(sql, params)
        except errors.UniqueViolation as exc:
            if exc.diag.constraint_name == CODE_CONSTRAINT:
                return False
            raise
        return True

    def init_schema(self) -> None:
        """Create the tables; idempotent. prepare_storage runs it before the fork."""
        with connect(self.url) as conn, schema_lock(conn), conn.transaction():
            for statement in POSTGRES_SCHEMA:
                conn.execute(statement)

    def close(self) -> None:
        with self._lock:
            if self._pool is not None and self._pool_pid == os.getpid():
                self._pool.close()
            self._pool = None
            self._pool_pid = None
