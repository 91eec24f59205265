"""The SQLite library the service links, and production-tuned connections to it.

Stock CPython often links an SQLite with the WAL-reset corruption race (3.7.0 up to
3.51.2; fixed in 3.51.3 and backported to 3.50.7 and 3.44.6). That race hits exactly
this design: several processes writing and checkpointing one WAL file. `pysqlite3`
bundles a fixed library, so it is preferred wherever its wheel exists.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from service.settings import Settings

log = logging.getLogger(__name__)


def _load_driver() -> ModuleType:
    try:
        import pysqlite3.dbapi2 as driver  # type: ignore[import-not-found]
    except ImportError:  # pragma: no cover - platforms without a pysqlite3 wheel
        import sqlite3 as driver
    return driver


sqlite3: ModuleType = _load_driver()
DRIVER_NAME = "pysqlite3" if sqlite3.__name__.startswith("pysqlite3") else "sqlite3"
SQLITE_VERSION: str = sqlite3.sqlite_version

OperationalError = sqlite3.OperationalError
DatabaseError = sqlite3.DatabaseError
Connection = sqlite3.Connection


def parse_version(version: str) -> tuple[int, int, int]:
    parts = [int(part) for part in version.split(".")[:3]]
    while len(parts) < 3:
        parts.append(0)
    return parts[0], parts[1], parts[2]


def has_wal_reset_bug(version: str) -> bool:
    """True for SQLite releases with the WAL-reset race and without a backported fix."""
    v = parse_version(version)
    if v < (3, 7, 0) or v >= (3, 51, 3):
        return False
    if (3, 50, 7) <= v < (3, 51, 0):
        return False
    return not (3, 44, 6) <= v < (3, 45, 0)


def library_facts() -> dict[str, object]:
    """The SQLite library this process links, for /info and the build-info metric."""
    return {
        "version": SQLITE_VERSION,
        "driver": DRIVER_NAME,
        "wal_reset_bug": has_wal_reset_bug(SQLITE_VERSION),
    }


class AffectedSqliteError(SystemExit):
    """Raised at start when the linked SQLite can corrupt a shared WAL file."""


def check_sqlite_version(settings: Settings, *, version: str = SQLITE_VERSION) -> None:
    """Refuse to run several processes on an SQLite with the WAL-reset race."""
    if settings.checkpointer != "sqlite" or not has_wal_reset_bug(version):
        return
    if settings.web_concurrency <= 1:
        log.warning("SQLite %s has the WAL-reset race; safe only with one process", version)
        return
    message = (
        f"SQLite {version} (driver {DRIVER_NAME}) has the WAL-reset corruption race "
        f"(3.7.0 to 3.51.2, fixed in 3.51.3, 3.50.7 and 3.44.6), and "
        f"WEB_CONCURRENCY={settings.web_concurrency} processes would share one WAL file. "
        "Fix: `pip install pysqlite3==0.6.1` (bundles a fixed SQLite), or link a fixed "
        "system SQLite, or run WEB_CONCURRENCY=1. To accept the risk anyway, set "
        "SQLITE_ALLOW_AFFECTED_VERSION=true."
    )
    if settings.sqlite_allow_affected_version:
        log.warning("%s Continuing because SQLITE_ALLOW_AFFECTED_VERSION=true.", message)
        return
    raise AffectedSqliteError(message)


def connect(path: Path | str, settings: Settings) -> Any:
    """Open a connection with the production settings.

    The connection runs in autocommit mode (`isolation_level=None`): writers start
    their own `BEGIN IMMEDIATE` so no implicit transaction, and no stale read
    snapshot, is ever left open.
    """
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        str(path),
        timeout=settings.sqlite_connect_timeout_s,
        check_same_thread=False,
        isolation_level=None,
    )
    try:
        for name, value in settings.sqlite_pragmas().items():
            conn.execute(f"PRAGMA {name}={value}")
    except Exception:
        conn.close()
        raise
    return conn


def unwritable_files(path: Path | str) -> list[Path]:
    """The database, -wal and -shm files that exist but this process may not write."""
    path = Path(path)
    files = [path, *(path.with_name(path.name + suffix) for suffix in ("-wal", "-shm"))]
    return [f for f in files if f.exists() and not os.access(f, os.W_OK)]


def effective_pragmas(conn: Any) -> dict[str, Any]:
    """Read back the settings actually in force on a connection."""
    names = (
        "journal_mode",
        "synchronous",
        "cache_size",
        "temp_store",
        "busy_timeout",
        "wal_autocheckpoint",
        "journal_size_limit",
        "auto_vacuum",
    )
    return {name: conn.execute(f"PRAGMA {name}").fetchone()[0] for name in names}


@contextmanager
def immediate(
    conn: Any, *, on_busy: Callable[[BaseException], BaseException] | None = None
) -> Iterator[Any]:
    """`BEGIN IMMEDIATE` … `COMMIT`, with `ROLLBACK` on any exception.

    `on_busy` turns a lock that could not be had within busy_timeout into the
    caller's own error (raised from the original).
    """
    try:
        conn.execute("BEGIN IMMEDIATE")
    except OperationalError as exc:
        if on_busy is not None and is_busy_error(exc):
            raise on_busy(exc) from exc
        raise
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def is_busy_error(exc: BaseException) -> bool:
    """SQLITE_BUSY / SQLITE_LOCKED: another connection holds the lock past busy_timeout."""
    if not isinstance(exc, OperationalError):
        return False
    text = str(exc).lower()
    return "database is locked" in text or "database table is locked" in text or "busy" in text


_STORAGE_FAULTS = (
    ("database or disk is full", "full"),
    ("readonly database", "readonly"),
    ("read-only", "readonly"),
    ("disk i/o error", "io"),
    ("unable to open database file", "io"),
)


def storage_fault(exc: BaseException) -> str | None:
    """'busy', 'full', 'readonly' or 'io' for failures of the storage itself, else None."""
    if not isinstance(exc, DatabaseError):
        return None
    if is_busy_error(exc):
        return "busy"
    text = str(exc).lower()
    for needle, kind in _STORAGE_FAULTS:
        if needle in text:
            return kind
    return None


FAULT_MESSAGES = {
    "busy": "the checkpoint database is locked by another writer; retry shortly",
    "full": "the disk holding the checkpoint database is full; nothing was written",
    "readonly": "the checkpoint database is read-only; nothing was written",
    "io": "the checkpoint database cannot be read or written (I/O error); nothing was written",
}
