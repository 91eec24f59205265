"""WAL checkpoints run in the background, in the maintenance leader, not inside commits.

A checkpoint inside a commit holds the write lock while it copies pages and syncs, and
every writer of every worker waits behind it. The leader's thread copies the pages
instead; the writers' own automatic checkpoint stays as a backstop at twice the setting.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import empty_checkpoint

from service.settings import Settings
from service.storage.locks import FileLockGuard
from service.storage.sqlite.maintainer import SqliteMaintenance, leader_path_for
from service.storage.sqlite.saver import SqliteCheckpointer
from service.storage.sqlite.schema import init_database
from tests.support.record_lock import held_by_another_process

PAGES = 50  # SQLITE_WAL_AUTOCHECKPOINT, small so that a few writes cross it


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(
        _env_file=None,
        checkpoints_db_path=tmp_path / "checkpoints.db",
        sqlite_wal_autocheckpoint=PAGES,
        **overrides,
    )


def put_many(saver: SqliteCheckpointer, count: int) -> None:
    for i in range(count):
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = {"note": "x" * 3000}  # about one page each
        checkpoint["channel_versions"] = {"note": i + 1}
        saver.put({"configurable": {"thread_id": f"t{i}", "checkpoint_ns": ""}}, checkpoint, {}, {})


def rows_in_main_file(db: Path, tmp_path: Path) -> int:
    """Checkpoints already copied into the database file itself (the WAL left out)."""
    alone = tmp_path / "main-file-only.db"
    shutil.copyfile(db, alone)
    conn = sqlite3.connect(f"file:{alone}?immutable=1", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0]
    finally:
        conn.close()


def test_writers_checkpoint_only_as_a_backstop(tmp_path: Path) -> None:
    on = settings_for(tmp_path)
    assert on.writer_wal_autocheckpoint() == 2 * PAGES
    off = settings_for(tmp_path, sqlite_wal_checkpoint_interval_ms=0)
    assert off.writer_wal_autocheckpoint() == PAGES
    init_database(on.checkpoints_db_path, on)
    saver = SqliteCheckpointer(on.checkpoints_db_path, on)
    try:
        assert saver.writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 2 * PAGES
        assert saver.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == PAGES
    finally:
        saver.close()


async def test_the_leader_copies_the_wal_into_the_database_in_the_background(
    tmp_path: Path,
) -> None:
    settings = settings_for(tmp_path, sqlite_wal_checkpoint_interval_ms=20)
    db = settings.checkpoints_db_path
    init_database(db, settings)
    saver = SqliteCheckpointer(db, settings)
    guard = FileLockGuard(tmp_path / "locks")
    maintenance = SqliteMaintenance(settings, guard)
    try:
        # Fewer pages than the writers' backstop: the commits copy nothing themselves.
        put_many(saver, PAGES // 4)
        assert rows_in_main_file(db, tmp_path) == 0
        assert maintenance.lock.try_acquire()  # this process leads
        maintenance.start()
        for _ in range(100):
            await asyncio.sleep(0.02)
            if rows_in_main_file(db, tmp_path) == PAGES // 4:
                break
        assert rows_in_main_file(db, tmp_path) == PAGES // 4
    finally:
        await maintenance.stop()
        saver.close()
        guard.close()


async def test_a_follower_leaves_the_wal_alone(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, sqlite_wal_checkpoint_interval_ms=20)
    db = settings.checkpoints_db_path
    init_database(db, settings)
    saver = SqliteCheckpointer(db, settings)
    guard = FileLockGuard(tmp_path / "locks")
    maintenance = SqliteMaintenance(settings, guard)
    try:
        with held_by_another_process(leader_path_for(db)):  # another worker leads
            put_many(saver, PAGES // 4)
            maintenance.start()
            await asyncio.sleep(0.3)
            assert not maintenance.lock.held
            assert rows_in_main_file(db, tmp_path) == 0
    finally:
        await maintenance.stop()
        saver.close()
        guard.close()
