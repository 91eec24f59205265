"""The background maintenance loop every worker runs; only the leader does the work."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from pathlib import Path

from service.observability import metrics
from service.settings import Settings
from service.storage.leader import FileLeaderLock, lead_and_sweep, timed_sweep
from service.storage.locks import ThreadGuard
from service.storage.sqlite.driver import DatabaseError, connect, unwritable_files
from service.storage.sqlite.maintenance import checkpoint_wal, sweep

log = logging.getLogger(__name__)


def leader_path_for(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".leader")


class SqliteMaintenance:
    """TTL, retention and WAL control for the SQLite backend, run by one worker at a time.

    Besides the sweep, the leader checkpoints the WAL in the background, on its own
    connection and thread (PASSIVE: it never waits for, nor blocks, a reader or a
    writer). Left to the commits, the checkpoint runs inside the one that crosses
    `SQLITE_WAL_AUTOCHECKPOINT` pages, with the write lock held while it copies pages
    and syncs, so every writer of every worker waits; the writers keep that only as a
    backstop, at twice the setting (`Settings.writer_wal_autocheckpoint`).
    """

    def __init__(self, settings: Settings, guard: ThreadGuard) -> None:
        self.settings = settings
        self.path = Path(settings.checkpoints_db_path)
        self.guard = guard
        self.lock = FileLeaderLock(leader_path_for(self.path))
        self._task: asyncio.Task[None] | None = None
        self._wal_stop = threading.Event()
        self._wal_thread = threading.Thread(
            target=self._wal_loop, name="wal-checkpoint", daemon=True
        )

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="maintenance")
        if self.settings.sqlite_wal_checkpoint_interval_ms:
            self._wal_thread.start()

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._wal_thread.is_alive():
            self._wal_stop.set()
            await asyncio.to_thread(self._wal_thread.join)
        if self.lock.held:
            metrics.MAINTENANCE_LEADER.set(0)
        self.lock.close()

    async def _try_lead(self) -> bool:
        if self.lock.try_acquire():
            metrics.MAINTENANCE_LEADER.set(1)
            return True
        return False

    async def _loop(self) -> None:
        await lead_and_sweep(self._try_lead, self.run_once, self.settings.maintenance_interval_s)

    def _wal_loop(self) -> None:
        """A plain thread: it wakes on time whatever the event loop is doing."""
        interval = self.settings.sqlite_wal_checkpoint_interval_ms / 1000
        conn = None
        try:
            while not self._wal_stop.wait(interval):
                if not self.lock.held:
                    continue
                # A connection opened while the files are read-only would keep the
                # process's shared-memory mapping read-only, and with it the writer
                # connection this worker reopens once the files are writable again.
                if conn is None and unwritable_files(self.path):
                    continue
                try:
                    conn = conn or connect(self.path, self.settings)
                    checkpoint_wal(conn, "PASSIVE")
                except DatabaseError:
                    log.warning("background WAL checkpoint failed", exc_info=True)
                    if conn is not None:
                        conn.close()
                    conn = None
        finally:
            if conn is not None:
                conn.close()

    async def run_once(self) -> None:
        await timed_sweep(
            lambda: asyncio.to_thread(sweep, self.path, self.settings, is_busy=self.guard.is_busy)
        )
