"""Where `BookingStore` keeps appointments: the interface, and its SQLite implementation.

`BookingStore` holds the schedule rules and the SQL (with `?` placeholders); a
`BookingDatabase` supplies connections and transactions, and makes the booking
transaction exclusive, which is what rules out double booking. PostgreSQL's
implementation is in `bookings.postgres`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

from service.settings import Settings
from service.storage.sqlite import driver as sqlite_driver

BUSY_MESSAGE = "The booking system is busy right now; please try again shortly."

SQLITE_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS appointments (
        id INTEGER PRIMARY KEY,
        confirmation_code TEXT UNIQUE NOT NULL,
        service TEXT NOT NULL,
        starts_at TEXT NOT NULL,
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


class BookingBusyError(RuntimeError):
    """The database could not serve the booking in time; retrying later may succeed."""


class BookingDatabase(Protocol):
    """Connections for `BookingStore`; each yields an object with `execute(sql, params)`."""

    def write(self) -> AbstractContextManager[Any]:
        """One exclusive transaction: no other booking write runs until it ends."""
        ...

    def read(self) -> AbstractContextManager[Any]: ...

    def insert_unless_code_taken(self, conn: Any, sql: str, params: Sequence[Any]) -> bool:
        """Run an INSERT; False (and no effect) when the confirmation code already exists."""
        ...

    def init_schema(self) -> None: ...

    def close(self) -> None: ...


class SqliteBookingDatabase:
    """One connection per process, shared by threads under a lock; `BEGIN IMMEDIATE` writes."""

    def __init__(self, path: Path | str, settings: Settings) -> None:
        self.path = Path(path)
        self.settings = settings
        self._lock = threading.Lock()
        self._conn: Any = None
        self._conn_pid: int | None = None

    def _connection(self) -> Any:
        # A connection must never cross fork(); a child opens its own.
        if self._conn is None or self._conn_pid != os.getpid():
            self._conn = sqlite_driver.connect(self.path, self.settings)
            self._conn_pid = os.getpid()
        return self._conn

    @contextmanager
    def write(self) -> Iterator[Any]:
        """`BEGIN IMMEDIATE` ... `COMMIT`, with `ROLLBACK` on any exception."""
        with (
            self._lock,
            sqlite_driver.immediate(
                self._connection(), on_busy=lambda _: BookingBusyError(BUSY_MESSAGE)
            ) as conn,
        ):
            yield conn

    @contextmanager
    def read(self) -> Iterator[Any]:
        with self._lock:
            yield self._connection()

    def insert_unless_code_taken(self, conn: Any, sql: str, params: Sequence[Any]) -> bool:
        try:
            conn.execute(sql, params)
        except sqlite_driver.sqlite3.IntegrityError as exc:
            if "confirmation_code" in str(exc):
                return False
            raise
        return True

    def init_schema(self) -> None:
        """Create the tables; idempotent, and leaves no connection open (fork-safe)."""
        conn = sqlite_driver.connect(self.path, self.settings)
        try:
            with sqlite_driver.immediate(conn):
                for statement in SQLITE_SCHEMA:
                    conn.execute(statement)
        finally:
            conn.close()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._conn_pid == os.getpid():
                self._conn.close()
            self._conn = None
            self._conn_pid = None
