"""TTL and retention for PostgreSQL, run by one worker across every host.

Leadership is a session-level advisory lock held on a connection of its own: if
the leader's process or host dies, its session ends and a follower takes over on
its next try. Each expired thread is deleted, and each over-long thread
compacted, in its own short transaction that first takes the thread's advisory
lock with `pg_try_advisory_xact_lock`: a thread with a run in flight is skipped,
never cut under the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import asdict, dataclass
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from service.observability import metrics
from service.settings import Settings
from service.storage.leader import lead_and_sweep, timed_sweep
from service.storage.postgres.guard import advisory_key
from service.storage.postgres.links import COLLECT_SQL
from service.storage.postgres.pool import connection_kwargs
from service.storage.postgres.saver import COMPACT_SQL, DELETE_THREAD_ROWS_SQL
from service.storage.postgres.schema import LEADER_LOCK, LOCK_CLASS
from service.storage.postgres.store import sweep_postgres_store
from service.storage.run_events import EXPIRED_EVENTS_SQL
from service.storage.run_records import ACTIVE_RUNS_SQL, STALE_RUN_SQL

log = logging.getLogger(__name__)

MAX_BATCHES = 10

# A thread's own TTL (minutes), else THREAD_TTL_DAYS (NULL when off). Two halves, so
# each uses its index: updated_at for the many, the partial threads_own_ttl for the few.
EXPIRED_SQL = """
(SELECT thread_id, updated_at FROM threads
 WHERE ttl_minutes IS NULL
   AND updated_at < now() - make_interval(secs => %(ttl_s)s::double precision)
 ORDER BY updated_at LIMIT %(limit)s)
UNION ALL
(SELECT thread_id, updated_at FROM threads
 WHERE ttl_minutes IS NOT NULL AND updated_at < now() - ttl_minutes * interval '1 minute'
 ORDER BY updated_at LIMIT %(limit)s)
ORDER BY updated_at LIMIT %(limit)s
"""
DELETE_EXPIRED_SQL = """
DELETE FROM threads
WHERE thread_id = %(thread_id)s AND updated_at < now() - coalesce(
    ttl_minutes * interval '1 minute', make_interval(secs => %(ttl_s)s::double precision))
RETURNING thread_id
"""
NEXT_THREADS_SQL = "SELECT thread_id FROM threads WHERE thread_id > %s ORDER BY thread_id LIMIT %s"
OVER_RETENTION_SQL = """
SELECT thread_id, count(*) AS n FROM checkpoints
WHERE thread_id = ANY(%s) AND checkpoint_ns = ''
GROUP BY thread_id HAVING count(*) > %s
"""


@dataclass
class PostgresSweepReport:
    expired_deleted: int = 0
    threads_compacted: int = 0
    checkpoints_removed: int = 0
    skipped_busy: int = 0
    stale_runs: int = 0
    expired_events: int = 0
    expired_store_items: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def _thread_locked(conn: AsyncConnection[Any], thread_id: str) -> bool:
    """Inside a transaction: take the thread's lock until commit, or False if a run has it."""
    cur = await conn.execute(
        "SELECT pg_try_advisory_xact_lock(%s) AS ok", (advisory_key(thread_id),)
    )
    row = await cur.fetchone()
    return bool(row and row["ok"])


async def delete_expired(
    conn: AsyncConnection[Any], thread_id: str, ttl_s: float | None
) -> bool | None:
    """True: deleted; False: a run holds it; None: it saw activity since it was listed."""
    async with conn.transaction():
        if not await _thread_locked(conn, thread_id):
            return False
        cur = await conn.execute(DELETE_EXPIRED_SQL, {"thread_id": thread_id, "ttl_s": ttl_s})
        if await cur.fetchone() is None:
            return None
        for sql in DELETE_THREAD_ROWS_SQL:
            await conn.execute(sql, (thread_id,))
    return True


async def fail_stale_runs(conn: AsyncConnection[Any]) -> int:
    """Runs still `running` on a thread nobody holds: their worker died. Mark them error."""
    rows = await (await conn.execute(ACTIVE_RUNS_SQL)).fetchall()
    failed = 0
    for row in rows:
        async with conn.transaction():
            if not await _thread_locked(conn, row["thread_id"]):
                continue  # a run holds it: alive
            sql = STALE_RUN_SQL.format(now="now()", m="%s")
            cur = await conn.execute(sql + " RETURNING run_id", (row["run_id"],))
            failed += await cur.fetchone() is not None
    return failed


async def compact_thread(conn: AsyncConnection[Any], thread_id: str, keep: int) -> bool:
    """Keep the newest `keep` root checkpoints; False when a run holds the thread."""
    async with conn.transaction():
        if not await _thread_locked(conn, thread_id):
            return False
        await conn.execute(COMPACT_SQL, {"thread_id": thread_id, "skip": keep - 1})
        await conn.execute(COLLECT_SQL, {"thread_id": thread_id})
    return True


class PostgresSweeper:
    """One pass of TTL and retention, in small batches, on the checkpoint pool."""

    def __init__(self, settings: Settings, pool: AsyncConnectionPool) -> None:
        self.settings = settings
        self.pool = pool
        # Retention walks all threads a slice per pass and resumes where it stopped.
        self.retention_cursor = ""

    async def sweep(self) -> PostgresSweepReport:
        report = PostgresSweepReport()
        batch = self.settings.maintenance_batch_size
        async with self.pool.connection() as conn:
            report.stale_runs = await fail_stale_runs(conn)
            expired = EXPIRED_EVENTS_SQL.format(m="now() - make_interval(secs => %s)")
            cur = await conn.execute(expired, (self.settings.resumable_stream_ttl_s,))
            report.expired_events = cur.rowcount
            await self._expire(conn, batch, report)
            keep = self.settings.keep_last_checkpoints
            if keep:
                await self._retain(conn, keep, batch, report)
        report.expired_store_items = await sweep_postgres_store(self.pool)
        return report

    async def _expire(
        self, conn: AsyncConnection[Any], batch: int, report: PostgresSweepReport
    ) -> None:
        days = self.settings.thread_ttl_days
        ttl_s = days * 86_400 if days > 0 else None
        for _ in range(MAX_BATCHES):
            params = {"ttl_s": ttl_s, "limit": batch}
            rows = await (await conn.execute(EXPIRED_SQL, params)).fetchall()
            skipped = 0
            for row in rows:
                outcome = await delete_expired(conn, row["thread_id"], ttl_s)
                report.expired_deleted += outcome is True
                skipped += outcome is False
            report.skipped_busy += skipped
            if len(rows) < batch or skipped:
                break

    async def _retain(
        self, conn: AsyncConnection[Any], keep: int, batch: int, report: PostgresSweepReport
    ) -> None:
        for _ in range(MAX_BATCHES):
            cur = await conn.execute(NEXT_THREADS_SQL, (self.retention_cursor, batch))
            ids = [row["thread_id"] for row in await cur.fetchall()]
            self.retention_cursor = ids[-1] if len(ids) == batch else ""
            if ids:
                cur = await conn.execute(OVER_RETENTION_SQL, (ids, keep))
                for row in await cur.fetchall():
                    if await compact_thread(conn, row["thread_id"], keep):
                        report.threads_compacted += 1
                        report.checkpoints_removed += row["n"] - keep
                    else:
                        report.skipped_busy += 1
            if not self.retention_cursor:
                break


class PostgresMaintenance:
    """The maintenance loop every worker runs; only the advisory-lock holder sweeps."""

    def __init__(self, settings: Settings, pool: AsyncConnectionPool, lock_url: str) -> None:
        self.settings = settings
        self.lock_url = lock_url
        self.sweeper = PostgresSweeper(settings, pool)
        self._conn: AsyncConnection[Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self.held = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="maintenance")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._resign()

    async def _resign(self) -> None:
        if self.held:
            metrics.MAINTENANCE_LEADER.set(0)
        self.held = False
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                await self._conn.close()
            self._conn = None

    async def try_lead(self) -> bool:
        """Take (or confirm) leadership; a broken leader connection means it was lost."""
        try:
            if self._conn is None or self._conn.closed:
                if self.held:  # the session that held the lock is gone, and the lock with it
                    await self._resign()
                self._conn = await AsyncConnection.connect(
                    self.lock_url, **connection_kwargs(self.settings, "leader")
                )
            if self.held:
                await self._conn.execute("SELECT 1")
                return True
            cur = await self._conn.execute(
                "SELECT pg_try_advisory_lock(%s, %s) AS ok", (LOCK_CLASS, LEADER_LOCK)
            )
            row = await cur.fetchone()
            self.held = bool(row and row["ok"])
        except psycopg.Error:
            log.warning("maintenance leader connection lost", exc_info=True)
            await self._resign()
            return False
        if self.held:
            metrics.MAINTENANCE_LEADER.set(1)
        return self.held

    async def _loop(self) -> None:
        await lead_and_sweep(self.try_lead, self.run_once, self.settings.maintenance_interval_s)

    async def run_once(self) -> PostgresSweepReport | None:
        return await timed_sweep(self.sweeper.sweep)
