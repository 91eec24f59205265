"""Storage backends behind one small interface (see `base.Persistence`)."""

from __future__ import annotations

import logging

from service.settings import Settings
from service.storage.base import Persistence
from service.storage.sqlite.driver import library_facts

__all__ = ["Persistence", "open_persistence", "prepare_checkpoint_storage", "sqlite_library"]

log = logging.getLogger(__name__)


def prepare_checkpoint_storage(settings: Settings) -> None:
    """Checks and schema creation for the checkpoint database (see service.bootstrap).

    Opens and closes its own connections, so no connection crosses the fork.
    """
    from service.storage.sqlite.driver import (
        DRIVER_NAME,
        SQLITE_VERSION,
        check_sqlite_version,
    )

    if settings.checkpointer == "postgres":  # no SQLite file is used at all
        from service.storage.postgres.schema import init_postgres

        init_postgres(settings.database_url)
    else:
        log.info("SQLite library %s (driver %s)", SQLITE_VERSION, DRIVER_NAME)
        check_sqlite_version(settings)
    if settings.checkpointer == "sqlite":
        from service.storage.sqlite.schema import init_database
        from service.storage.sqlite.store import init_sqlite_store

        init_database(settings.checkpoints_db_path, settings)
        init_sqlite_store(settings.checkpoints_db_path, settings)


def sqlite_library() -> dict[str, object]:
    """The SQLite library this process links, reported whatever the backend."""
    return library_facts()


def open_persistence(settings: Settings) -> Persistence:
    """Open this worker's connections to the configured backend."""
    if settings.checkpointer == "sqlite":
        from service.storage.sqlite.backend import SqlitePersistence

        return SqlitePersistence(settings)
    if settings.checkpointer == "memory":
        from service.storage.bench.memory import MemoryPersistence

        return MemoryPersistence(settings)
    if settings.checkpointer == "sqlite-stock":  # benchmark only: loadtest/bench.py
        from service.storage.bench.stock_sqlite import StockSqlitePersistence

        return StockSqlitePersistence(settings)
    if settings.checkpointer == "postgres":
        from service.storage.postgres.backend import PostgresPersistence

        return PostgresPersistence(settings)
    raise NotImplementedError(f"CHECKPOINTER={settings.checkpointer} is not available yet")
