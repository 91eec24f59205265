"""Storage backends behind one small interface (see `base.Persistence`)."""

from __future__ import annotations

import logging

from service.persistence.base import Persistence
from service.settings import Settings

log = logging.getLogger(__name__)


def prepare_checkpoint_storage(settings: Settings) -> None:
    """Checks and schema creation for the checkpoint database (see service.bootstrap).

    Opens and closes its own connections, so no connection crosses the fork.
    """
    from service.persistence.sqlite_driver import (
        DRIVER_NAME,
        SQLITE_VERSION,
        check_sqlite_version,
    )

    if settings.checkpointer == "postgres":  # no SQLite file is used at all
        from service.persistence.postgres_schema import init_postgres

        init_postgres(settings.database_url)
    else:
        log.info("SQLite library %s (driver %s)", SQLITE_VERSION, DRIVER_NAME)
        check_sqlite_version(settings)
    if settings.checkpointer == "sqlite":
        from service.persistence.sqlite_schema import init_database

        init_database(settings.checkpoints_db_path, settings)


def open_persistence(settings: Settings) -> Persistence:
    """Open this worker's connections to the configured backend."""
    if settings.checkpointer == "sqlite":
        from service.persistence.sqlite_backend import SqlitePersistence

        return SqlitePersistence(settings)
    if settings.checkpointer == "memory":
        from service.persistence.memory_backend import MemoryPersistence

        return MemoryPersistence(settings)
    if settings.checkpointer == "sqlite-stock":  # benchmark only: loadtest/bench.py
        from service.persistence.stock_sqlite_backend import StockSqlitePersistence

        return StockSqlitePersistence(settings)
    if settings.checkpointer == "postgres":
        from service.persistence.postgres_backend import PostgresPersistence

        return PostgresPersistence(settings)
    raise NotImplementedError(f"CHECKPOINTER={settings.checkpointer} is not available yet")
