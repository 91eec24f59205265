"""PostgreSQL backend: checkpoints, thread records and the thread guard in one database.

Any number of hosts may share it. Each worker owns two pools: one for the
checkpointer and thread records, one for the guard's lock connections (a run
holds one for its whole duration, so runs can never starve checkpoint writes).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from psycopg.types.json import Jsonb

from service.observability import metrics
from service.settings import Settings
from service.storage.assistant_records import (
    DELETE_ASSISTANT_SQL,
    INSERT_ASSISTANT_SQL,
    INSERT_VERSION_SQL,
    LAST_VERSION_SQL,
    LATEST_SQL,
    SET_VERSION_SQL,
    VERSIONS_SQL,
    AssistantRecord,
    assistant_record,
    version_params,
)
from service.storage.base import (
    CancelAction,
    CronRecord,
    IfExists,
    PruneStrategy,
    RunEvent,
    RunRecord,
    RunStatus,
    ThreadQuery,
    ThreadRecord,
)
from service.storage.cron_records import (
    ADVANCE_CRON_SQL,
    CRON_COLUMNS,
    DUE_CRONS_SQL,
    SAVE_CRON_SQL,
    cron_filter,
    cron_params,
    cron_record,
)
from service.storage.errors import ThreadExistsError
from service.storage.postgres.guard import PostgresAdvisoryGuard, unlock_all
from service.storage.postgres.maintenance import PostgresMaintenance
from service.storage.postgres.pool import new_pool, pool_stats, pooled, redacted
from service.storage.postgres.saver import DELETE_THREAD_ROWS_SQL, PostgresCheckpointer
from service.storage.postgres.store import open_postgres_store
from service.storage.records import (
    STATUS_COUNTS_SQL,
    THREAD_COLUMNS,
    iso_utc,
    search_order,
    search_where,
    set_status_gauges,
    thread_record,
    utcnow_iso,
)
from service.storage.run_events import EVENT_COLUMNS, EVENTS_AFTER_SQL
from service.storage.run_records import (
    ACTIVE_RUN_FILTER,
    CANCEL_PENDING_SQL,
    CANCEL_REQUESTS_SQL,
    CLAIM_RUN_SQL,
    DELETE_PENDING_SQL,
    DELETE_RUN_WHERE,
    NEXT_PENDING_SQL,
    QUEUE_STATS_SQL,
    REQUEST_CANCEL_SQL,
    RUN_COLUMNS,
    STALE_ON_THREAD_SQL,
    insert_run_sql,
    own_first_cutoff,
    run_list_where,
    run_params,
    run_record,
)

GAUGE_INTERVAL_S = 5.0


def _record(row: dict[str, Any]) -> ThreadRecord:
    return thread_record(**row)


def _metadata_filter(key: str, value: Any) -> tuple[str, list[Any]]:
    """A missing key matches null, as in the SQLite backend."""
    return "coalesce(metadata -> %s, 'null'::jsonb) = %s", [key, Jsonb(value)]


class PostgresPersistence:
    """One worker's view of the shared PostgreSQL database."""

    backend = "postgres"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        lock_url = settings.database_lock_url or settings.database_url
        retry = settings.busy_retry_after_s
        self.pool = new_pool(settings, "checkpoints")
        self.lock_pool = new_pool(settings, "guard", url=lock_url, min_size=0, reset=unlock_all)
        self.checkpointer = PostgresCheckpointer(
            self.pool,
            keep_last=settings.keep_last_checkpoints,
            retry_after_s=retry,
            link_cache_bytes=settings.checkpoint_cache_mb * 1024 * 1024,
        )
        self.guard = PostgresAdvisoryGuard(self.lock_pool, lock_url, retry_after_s=retry)
        self.maintenance = PostgresMaintenance(settings, self.pool, lock_url)
        self._gauges: asyncio.Task[None] | None = None

    async def aopen(self) -> None:
        """Open the pools in this worker's loop; a database still down is not fatal here."""
        await self.pool.open(wait=False)
        await self.lock_pool.open(wait=False)

    @property
    def leads_maintenance(self) -> bool:
        return self.maintenance.held

    async def start(self) -> None:
        """Open the pools, then the maintenance loop and the pool gauges."""
        await self.aopen()
        self.store = open_postgres_store(self.pool, self.settings)
        self.maintenance.start()
        self._gauges = asyncio.create_task(self._refresh_loop(), name="pool-gauges")

    async def touch(self, thread_id: str) -> None:
        """Nothing to do: the run's checkpoint write touched the thread in its transaction."""

    async def _refresh_loop(self) -> None:
        """Each worker's pool gauges stay fresh between scrapes answered by other workers."""
        while True:
            self.refresh_gauges()
            with contextlib.suppress(Exception):  # a gauge must never take the worker down
                rows = await self._fetch(STATUS_COUNTS_SQL)
                set_status_gauges({row["status"]: row["n"] for row in rows})
            await asyncio.sleep(GAUGE_INTERVAL_S)

    def refresh_gauges(self) -> None:
        for name, pool in (("checkpoints", self.pool), ("guard", self.lock_pool)):
            stats = pool_stats(pool)
            metrics.POSTGRES_POOL_CONNECTIONS.labels(pool=name).set(stats["connections"])
            metrics.POSTGRES_POOL_IN_USE.labels(pool=name).set(stats["in_use"])
            metrics.POSTGRES_POOL_WAITING.labels(pool=name).set(stats["waiting"])

    async def _fetch(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        async with pooled(self.pool, self.settings.busy_retry_after_s) as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchall()

    # --- threads --------------------------------------------------------------------
    async def create_thread(
        self,
        thread_id: str,
        metadata: dict[str, Any],
        if_exists: IfExists,
        ttl_minutes: float | None = None,
    ) -> tuple[ThreadRecord, bool]:
        async def create() -> tuple[ThreadRecord, bool]:
            rows = await self._fetch(
                "INSERT INTO threads (thread_id, metadata, ttl_minutes) VALUES (%s, %s, %s) "
                f"ON CONFLICT (thread_id) DO NOTHING RETURNING {THREAD_COLUMNS}",
                (thread_id, Jsonb(metadata), ttl_minutes),
            )
            if rows:
                self.checkpointer.committed()
                return _record(rows[0]), True
            if if_exists == "raise":
                raise ThreadExistsError(thread_id)
            existing = await self._fetch(
                f"SELECT {THREAD_COLUMNS} FROM threads WHERE thread_id = %s", (thread_id,)
            )
            if not existing:  # deleted in between: create it after all
                return await create()
            return _record(existing[0]), False

        return await self.checkpointer.timed("thread", create())

    async def get_thread(self, thread_id: str) -> ThreadRecord | None:
        rows = await self.checkpointer.timed(
            "thread",
            self._fetch(f"SELECT {THREAD_COLUMNS} FROM threads WHERE thread_id = %s", (thread_id,)),
        )
        return _record(rows[0]) if rows else None

    async def search_threads(
        self, query: ThreadQuery, limit: int, offset: int
    ) -> list[ThreadRecord]:
        clause, params = search_where(query, _metadata_filter, "%s")
        rows = await self.checkpointer.timed(
            "thread",
            self._fetch(
                f"SELECT {THREAD_COLUMNS} FROM threads {clause} {search_order(query)} "
                "LIMIT %s OFFSET %s",
                (*params, limit, offset),
            ),
        )
        return [_record(row) for row in rows]

    async def count_threads(self, query: ThreadQuery) -> int:
        clause, params = search_where(query, _metadata_filter, "%s")
        rows = await self.checkpointer.timed(
            "thread", self._fetch(f"SELECT count(*) AS n FROM threads {clause}", params)
        )
        return int(rows[0]["n"])

    async def update_thread(
        self, thread_id: str, metadata: dict[str, Any], ttl_minutes: float | None = None
    ) -> ThreadRecord | None:
        rows = await self.checkpointer.timed(
            "thread",
            self._fetch(
                "UPDATE threads SET metadata = metadata || %s, updated_at = now(), "
                "ttl_minutes = coalesce(%s::double precision, ttl_minutes) "
                f"WHERE thread_id = %s RETURNING {THREAD_COLUMNS}",
                (Jsonb(metadata), ttl_minutes, thread_id),
            ),
        )
        self.checkpointer.committed()
        return _record(rows[0]) if rows else None

    async def copy_thread(self, source_id: str, target_id: str) -> ThreadRecord:
        await self.checkpointer.acopy_thread(source_id, target_id)
        record = await self.get_thread(target_id)
        assert record is not None
        return record

    async def delete_thread(self, thread_id: str) -> bool:
        async def delete() -> bool:
            retry = self.settings.busy_retry_after_s
            async with pooled(self.pool, retry) as conn, conn.transaction():
                for sql in DELETE_THREAD_ROWS_SQL:
                    await conn.execute(sql, (thread_id,))
                cur = await conn.execute(
                    "DELETE FROM threads WHERE thread_id = %s RETURNING thread_id", (thread_id,)
                )
                existed = await cur.fetchone() is not None
            self.checkpointer.committed()
            return existed

        return await self.checkpointer.timed("delete", delete())

    async def set_thread_error(self, thread_id: str, error: str) -> None:
        await self.checkpointer.timed(
            "thread",
            self._fetch(
                "UPDATE threads SET status = 'error', error = %s, updated_at = now() "
                "WHERE thread_id = %s RETURNING thread_id",
                (error[:2000], thread_id),
            ),
        )
        self.checkpointer.committed()

    async def mark_interrupted(self, thread_id: str) -> None:
        await self.checkpointer.timed(
            "thread",
            self._fetch(
                "UPDATE threads SET status = 'interrupted', error = NULL, updated_at = now() "
                "WHERE thread_id = %s RETURNING thread_id",
                (thread_id,),
            ),
        )
        self.checkpointer.committed()

    async def prune_threads(self, thread_ids: list[str], strategy: PruneStrategy) -> int:
        pruned = 0
        for thread_id in thread_ids:
            if strategy == "delete":
                pruned += int(await self.delete_thread(thread_id))
            else:
                await self.checkpointer.aprune([thread_id], strategy="keep_latest")
                pruned += 1
        return pruned

    # --- health and facts -------------------------------------------------------------
    # --- runs -------------------------------------------------------------------------
    async def create_run(
        self, run: RunRecord, *, unless_queued: bool = False, unless_active: bool = False
    ) -> bool:
        values = "%s, %s, %s, %s, %s, %s, %s, %s::timestamptz, %s::timestamptz, %s"
        sql = (
            insert_run_sql(values, "%s", unless_queued=unless_queued, unless_active=unless_active)
            + " RETURNING run_id"
        )
        params = run_params(run, Jsonb)
        if unless_queued or unless_active:
            params += (run.thread_id,)
        return await self._changed(sql, params)

    async def set_run_status(
        self, run_id: str, status: RunStatus, events: tuple[str, list[RunEvent]] | None = None
    ) -> None:
        if events:
            await self.append_run_events(events[0], run_id, events[1])
        await self._changed(
            "UPDATE runs SET status = %s, cancel = NULL, updated_at = now() WHERE run_id = %s "
            "RETURNING run_id",
            (status, run_id),
        )

    async def next_pending_runs(self, limit: int, worker: str = "") -> list[RunRecord]:
        sql = NEXT_PENDING_SQL.format(collate=' COLLATE "C"', m="%s")
        params = (worker, own_first_cutoff(), limit)
        rows = await self.checkpointer.timed("queue", self._fetch(sql, params))
        return [run_record(row) for row in rows]

    async def claim_run(self, run_id: str, thread_id: str, worker: str) -> int | None:
        claim = CLAIM_RUN_SQL.format(m="%s", now="now()")
        stale = STALE_ON_THREAD_SQL.format(m="%s", now="now()")
        sql = (
            f"WITH claimed AS ({claim} RETURNING run_id), "
            f"stale AS ({stale} AND EXISTS (SELECT 1 FROM claimed) RETURNING run_id) "
            "SELECT (SELECT count(*) FROM claimed) AS claimed, "
            "(SELECT count(*) FROM stale) AS stale"
        )
        rows = await self.checkpointer.timed(
            "run", self._fetch(sql, (worker, run_id, thread_id, run_id))
        )
        self.checkpointer.committed()
        return int(rows[0]["stale"]) if rows[0]["claimed"] else None

    async def cancel_run(self, run_id: str, action: CancelAction) -> RunStatus | None:
        if action == "rollback":
            pending = DELETE_PENDING_SQL.format(m="%s")
        else:
            pending = CANCEL_PENDING_SQL.format(m="%s", now="now()")
        if await self._changed(pending + " RETURNING run_id", (run_id,)):
            return "pending"
        running = REQUEST_CANCEL_SQL.format(m="%s", now="now()") + " RETURNING run_id"
        return "running" if await self._changed(running, (action, run_id)) else None

    async def cancel_requests(self, worker: str) -> dict[str, CancelAction]:
        rows = await self.checkpointer.timed(
            "queue", self._fetch(CANCEL_REQUESTS_SQL.format(m="%s"), (worker,))
        )
        return {row["run_id"]: row["cancel"] for row in rows}

    async def active_runs(self, thread_id: str | None) -> list[RunRecord]:
        where = ACTIVE_RUN_FILTER + (" AND thread_id = %s" if thread_id else "")
        sql = f'SELECT {RUN_COLUMNS} FROM runs WHERE {where} ORDER BY run_id COLLATE "C"'
        rows = await self.checkpointer.timed(
            "run", self._fetch(sql, (thread_id,) if thread_id else ())
        )
        return [run_record(row) for row in rows]

    async def queue_stats(self) -> tuple[int, str | None]:
        rows = await self.checkpointer.timed(
            "queue",
            self._fetch(QUEUE_STATS_SQL),
        )
        oldest = rows[0]["oldest"]
        return int(rows[0]["n"]), None if oldest is None else iso_utc(oldest)

    # --- assistants -------------------------------------------------------------------
    async def create_assistant(self, record: AssistantRecord) -> bool:
        now = record.created_at or utcnow_iso()

        async def create() -> bool:
            retry = self.settings.busy_retry_after_s
            async with pooled(self.pool, retry) as conn, conn.transaction():
                sql = INSERT_ASSISTANT_SQL.format(m="%s") + " RETURNING assistant_id"
                cur = await conn.execute(sql, (record.assistant_id, now, now))
                if await cur.fetchone() is None:
                    return False
                await conn.execute(
                    INSERT_VERSION_SQL.format(m="%s"), version_params(record, 1, now)
                )
            self.checkpointer.committed()
            return True

        return await self.checkpointer.timed("assistant", create())

    async def add_assistant_version(self, record: AssistantRecord) -> AssistantRecord | None:
        now = utcnow_iso()
        assistant_id = record.assistant_id

        async def add() -> bool:
            retry = self.settings.busy_retry_after_s
            async with pooled(self.pool, retry) as conn, conn.transaction():
                # The row lock orders concurrent edits: each gets the next number.
                cur = await conn.execute(
                    "SELECT version FROM assistants WHERE assistant_id = %s FOR UPDATE",
                    (assistant_id,),
                )
                if await cur.fetchone() is None:
                    return False
                cur = await conn.execute(LAST_VERSION_SQL.format(m="%s"), (assistant_id,))
                row = await cur.fetchone()
                version = int(row["max"]) + 1
                await conn.execute(
                    INSERT_VERSION_SQL.format(m="%s"), version_params(record, version, now)
                )
                await conn.execute(
                    SET_VERSION_SQL.format(m="%s"),
                    (version, now, assistant_id, assistant_id, version),
                )
            self.checkpointer.committed()
            return True

        if not await self.checkpointer.timed("assistant", add()):
            return None
        return await self.get_assistant(assistant_id)

    async def set_assistant_version(self, assistant_id: str, version: int) -> bool:
        sql = SET_VERSION_SQL.format(m="%s") + " RETURNING assistant_id"
        params = (version, utcnow_iso(), assistant_id, assistant_id, version)
        return await self._changed(sql, params)

    async def get_assistant(self, assistant_id: str) -> AssistantRecord | None:
        sql = f"{LATEST_SQL} WHERE a.assistant_id = %s"
        rows = await self.checkpointer.timed("assistant", self._fetch(sql, (assistant_id,)))
        return assistant_record(rows[0]) if rows else None

    async def list_assistants(self) -> list[AssistantRecord]:
        sql = f"{LATEST_SQL} ORDER BY a.created_at, a.assistant_id"
        rows = await self.checkpointer.timed("assistant", self._fetch(sql))
        return [assistant_record(row) for row in rows]

    async def list_assistant_versions(self, assistant_id: str) -> list[AssistantRecord]:
        sql = VERSIONS_SQL.format(m="%s")
        rows = await self.checkpointer.timed("assistant", self._fetch(sql, (assistant_id,)))
        return [assistant_record(row) for row in rows]

    async def delete_assistant(self, assistant_id: str) -> bool:
        async def delete() -> bool:
            retry = self.settings.busy_retry_after_s
            deleted = 0
            async with pooled(self.pool, retry) as conn, conn.transaction():
                for sql in DELETE_ASSISTANT_SQL:
                    cur = await conn.execute(sql.format(m="%s"), (assistant_id,))
                    deleted += cur.rowcount
            self.checkpointer.committed()
            return deleted > 0

        return await self.checkpointer.timed("assistant", delete())

    # --- crons ------------------------------------------------------------------------
    async def save_cron(self, cron: CronRecord) -> None:
        sql = SAVE_CRON_SQL.format(marks=", ".join(["%s"] * 14)) + " RETURNING cron_id"
        await self._changed(sql, cron_params(cron))

    async def get_cron(self, cron_id: str) -> CronRecord | None:
        sql = f"SELECT {CRON_COLUMNS} FROM crons WHERE cron_id = %s"
        rows = await self.checkpointer.timed("run", self._fetch(sql, (cron_id,)))
        return cron_record(rows[0]) if rows else None

    async def delete_cron(self, cron_id: str) -> bool:
        return await self._changed(
            "DELETE FROM crons WHERE cron_id = %s RETURNING cron_id", (cron_id,)
        )

    async def list_crons(
        self, assistant_id: str | None, thread_id: str | None, enabled: bool | None
    ) -> list[CronRecord]:
        where, params = cron_filter(assistant_id, thread_id, enabled, "%s")
        sql = f"SELECT {CRON_COLUMNS} FROM crons{where} ORDER BY created_at, cron_id"
        rows = await self.checkpointer.timed("run", self._fetch(sql, params))
        return [cron_record(row) for row in rows]

    async def due_crons(self, now: str, limit: int) -> list[CronRecord]:
        sql = DUE_CRONS_SQL.format(true="TRUE", m="%s")
        rows = await self.checkpointer.timed("queue", self._fetch(sql, (now, limit)))
        return [cron_record(row) for row in rows]

    async def advance_cron(
        self, cron_id: str, fired: str, next_run_date: str | None, enabled: bool
    ) -> bool:
        sql = ADVANCE_CRON_SQL.format(m="%s") + " RETURNING cron_id"
        return await self._changed(sql, (next_run_date, enabled, utcnow_iso(), cron_id, fired))

    async def _changed(self, sql: str, params: tuple[Any, ...]) -> bool:
        """One write statement with RETURNING; whether it touched a row."""
        rows = await self.checkpointer.timed("run", self._fetch(sql, params))
        self.checkpointer.committed()
        return bool(rows)

    async def append_run_events(self, thread_id: str, run_id: str, events: list[RunEvent]) -> None:
        rows = [(run_id, thread_id, seq, event, data) for seq, event, data in events]
        sql = (
            f"INSERT INTO run_events ({EVENT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, now()) "
            "ON CONFLICT DO NOTHING"
        )

        async def insert() -> None:
            async with (
                pooled(self.pool, self.settings.busy_retry_after_s) as conn,
                conn.transaction(),
                conn.cursor() as cur,
            ):
                await cur.executemany(sql, rows)

        await self.checkpointer.timed("run", insert())
        self.checkpointer.committed()

    async def run_events_after(self, run_id: str, after: int, limit: int) -> list[RunEvent]:
        sql = EVENTS_AFTER_SQL.format(m="%s")
        rows = await self.checkpointer.timed("run", self._fetch(sql, (run_id, after, limit)))
        return [(int(row["seq"]), row["event"], row["data"]) for row in rows]

    async def run_statuses(self, run_ids: list[str]) -> dict[str, RunStatus]:
        rows = await self.checkpointer.timed(
            "run",
            self._fetch("SELECT run_id, status FROM runs WHERE run_id = ANY(%s)", (run_ids,)),
        )
        return {row["run_id"]: row["status"] for row in rows}

    async def get_run(self, thread_id: str, run_id: str) -> RunRecord | None:
        rows = await self.checkpointer.timed(
            "run",
            self._fetch(
                f"SELECT {RUN_COLUMNS} FROM runs WHERE thread_id = %s AND run_id = %s",
                (thread_id, run_id),
            ),
        )
        return run_record(rows[0]) if rows else None

    async def list_runs(
        self, thread_id: str, status: RunStatus | None, limit: int, offset: int
    ) -> list[RunRecord]:
        params = (thread_id, status) if status else (thread_id,)
        rows = await self.checkpointer.timed(
            "run",
            self._fetch(
                f"SELECT {RUN_COLUMNS} FROM runs {run_list_where(status, '%s')} "
                "ORDER BY created_at DESC, run_id LIMIT %s OFFSET %s",
                (*params, limit, offset),
            ),
        )
        return [run_record(row) for row in rows]

    async def delete_run(self, thread_id: str, run_id: str) -> bool:
        rows = await self.checkpointer.timed(
            "run",
            self._fetch(
                f"DELETE FROM runs WHERE {DELETE_RUN_WHERE.format(m='%s')} RETURNING run_id",
                (thread_id, run_id),
            ),
        )
        self.checkpointer.committed()
        return bool(rows)

    async def check_ready(self) -> None:
        await self.checkpointer.timed("get", self._fetch("SELECT 1 FROM threads LIMIT 1"))

    def info(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "database": redacted(self.settings.database_url),
            "lock_database": redacted(
                self.settings.database_lock_url or self.settings.database_url
            ),
            "pools": {"checkpoints": pool_stats(self.pool), "guard": pool_stats(self.lock_pool)},
            "maintenance_leader": self.maintenance.held,
        }

    async def aclose(self) -> None:
        if self._gauges is not None:
            self._gauges.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._gauges
        await self.maintenance.stop()
        self.guard.close()
        await self.lock_pool.close()
        await self.pool.close()
