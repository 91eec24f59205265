"""SQLite backend: checkpoints and thread records in one WAL database file."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

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
from service.storage.errors import StorageUnavailableError, ThreadExistsError
from service.storage.locks import FileLockGuard
from service.storage.records import (
    STATUS_COUNTS_SQL,
    THREAD_COLUMNS,
    UPDATE_THREAD_SQL,
    apply_thread_update,
    iso_utc,
    search_order,
    search_where,
    set_status_gauges,
    sqlite_filter,
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
    RUN_STATUSES_MAX,
    RUN_STATUSES_SQL,
    STALE_ON_THREAD_SQL,
    dumps,
    insert_run_sql,
    own_first_cutoff,
    run_list_where,
    run_params,
    run_record,
)
from service.storage.sqlite.driver import (
    DRIVER_NAME,
    FAULT_MESSAGES,
    SQLITE_VERSION,
    effective_pragmas,
    unwritable_files,
)
from service.storage.sqlite.maintainer import SqliteMaintenance
from service.storage.sqlite.saver import SqliteCheckpointer
from service.storage.sqlite.store import open_sqlite_store

log = logging.getLogger(__name__)

# Below this, a WAL append or checkpoint can fail at any moment: report not ready.
MIN_FREE_BYTES = 1024 * 1024


def set_file_gauges(db_path: Path) -> None:
    for name, size in sqlite_file_sizes(db_path).items():
        metrics.SQLITE_FILE_BYTES.labels(file=name).set(size)


def lock_path_for(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".locks")


def sqlite_file_sizes(db_path: Path) -> dict[str, int]:
    sizes = {}
    for name, path in (
        ("db", db_path),
        ("wal", db_path.with_name(db_path.name + "-wal")),
        ("shm", db_path.with_name(db_path.name + "-shm")),
    ):
        try:
            sizes[name] = os.stat(path).st_size
        except FileNotFoundError:
            sizes[name] = 0
    return sizes


_INSERT_EVENTS = f"INSERT OR IGNORE INTO run_events ({EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"


def _event_rows(
    run_id: str, events: tuple[str, list[RunEvent]] | None, now: str
) -> list[tuple[Any, ...]]:
    if not events:
        return []
    thread_id, kept = events
    return [(run_id, thread_id, seq, event, data, now) for seq, event, data in kept]


class SqlitePersistence:
    """One worker's view of the shared SQLite database."""

    backend = "sqlite"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.path = Path(settings.checkpoints_db_path)
        self.checkpointer = SqliteCheckpointer(
            self.path, settings, keep_last=settings.keep_last_checkpoints
        )
        self.guard = FileLockGuard(lock_path_for(self.path))
        self.maintenance = SqliteMaintenance(settings, self.guard)

    @property
    def leads_maintenance(self) -> bool:
        return self.maintenance.lock.held

    async def start(self) -> None:
        """Open the store; start the maintenance loop (it works only while this worker leads)."""
        self.store = open_sqlite_store(self.checkpointer, self.settings)
        self.maintenance.start()

    async def touch(self, thread_id: str) -> None:
        """Nothing to do: the run's checkpoint write touched the thread in its transaction."""

    # --- threads --------------------------------------------------------------------
    async def create_thread(
        self,
        thread_id: str,
        metadata: dict[str, Any],
        if_exists: IfExists,
        ttl_minutes: float | None = None,
    ) -> tuple[ThreadRecord, bool]:
        saver = self.checkpointer

        def create() -> tuple[ThreadRecord, bool]:
            now = utcnow_iso()
            with saver.write_transaction() as cur:
                cur.execute(
                    "INSERT OR IGNORE INTO threads (thread_id, created_at, updated_at, metadata, "
                    "ttl_minutes) VALUES (?, ?, ?, ?, ?)",
                    (thread_id, now, now, json.dumps(metadata, ensure_ascii=False), ttl_minutes),
                )
                created = cur.rowcount == 1
                if not created and if_exists == "raise":
                    raise ThreadExistsError(thread_id)
                row = cur.execute(
                    f"SELECT {THREAD_COLUMNS} FROM threads WHERE thread_id = ?", (thread_id,)
                ).fetchone()
            return thread_record(*row), created

        return await saver.run_write("thread", create)

    async def get_thread(self, thread_id: str) -> ThreadRecord | None:
        row = await self.checkpointer.run_read(
            "thread",
            self.checkpointer.read_one,
            f"SELECT {THREAD_COLUMNS} FROM threads WHERE thread_id = ?",
            (thread_id,),
            point=True,
        )
        return thread_record(*row) if row else None

    async def search_threads(
        self, query: ThreadQuery, limit: int, offset: int
    ) -> list[ThreadRecord]:
        clause, params = search_where(query, sqlite_filter, "?")
        rows = await self.checkpointer.run_read(
            "thread",
            self.checkpointer.read_all,
            f"SELECT {THREAD_COLUMNS} FROM threads {clause} {search_order(query)} LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return [thread_record(*row) for row in rows]

    async def count_threads(self, query: ThreadQuery) -> int:
        clause, params = search_where(query, sqlite_filter, "?")
        row = await self.checkpointer.run_read(
            "thread", self.checkpointer.read_one, f"SELECT count(*) FROM threads {clause}", params
        )
        return int(row[0])

    async def update_thread(
        self, thread_id: str, metadata: dict[str, Any], ttl_minutes: float | None = None
    ) -> ThreadRecord | None:
        saver = self.checkpointer

        def merge() -> ThreadRecord | None:
            with saver.write_transaction() as cur:
                row = cur.execute(
                    f"SELECT {THREAD_COLUMNS} FROM threads WHERE thread_id = ?", (thread_id,)
                ).fetchone()
                if row is None:
                    return None
                record = thread_record(*row)
                cur.execute(UPDATE_THREAD_SQL, apply_thread_update(record, metadata, ttl_minutes))
            return record

        return await saver.run_write("thread", merge)

    async def copy_thread(self, source_id: str, target_id: str) -> ThreadRecord:
        await self.checkpointer.acopy_thread(source_id, target_id)
        record = await self.get_thread(target_id)
        assert record is not None
        return record

    async def delete_thread(self, thread_id: str) -> bool:
        saver = self.checkpointer
        return await saver.run_write("delete", saver.delete_thread, thread_id)

    async def set_thread_error(self, thread_id: str, error: str) -> None:
        saver = self.checkpointer

        def mark() -> None:
            with saver.write_transaction() as cur:
                cur.execute(
                    "UPDATE threads SET status = 'error', error = ?, updated_at = ? "
                    "WHERE thread_id = ?",
                    (error[:2000], utcnow_iso(), thread_id),
                )

        await saver.run_write("thread", mark)

    async def mark_interrupted(self, thread_id: str) -> None:
        saver = self.checkpointer

        def mark() -> None:
            with saver.write_transaction() as cur:
                cur.execute(
                    "UPDATE threads SET status = 'interrupted', error = NULL, updated_at = ? "
                    "WHERE thread_id = ?",
                    (utcnow_iso(), thread_id),
                )

        await saver.run_write("thread", mark)

    async def prune_threads(self, thread_ids: list[str], strategy: PruneStrategy) -> int:
        pruned = 0
        for thread_id in thread_ids:
            if strategy == "delete":
                pruned += int(await self.delete_thread(thread_id))
            else:
                await self.checkpointer.run_write(
                    "prune", lambda tid: self.checkpointer.prune_thread(tid, keep=1), thread_id
                )
                pruned += 1
        return pruned

    # --- runs -------------------------------------------------------------------------
    async def create_run(
        self, run: RunRecord, *, unless_queued: bool = False, unless_active: bool = False
    ) -> bool:
        sql = insert_run_sql(
            ", ".join("?" * 10), "?", unless_queued=unless_queued, unless_active=unless_active
        )
        params = run_params(run, dumps)
        if unless_queued or unless_active:
            params += (run.thread_id,)
        return await self._changed(sql, params)

    async def set_run_status(
        self, run_id: str, status: RunStatus, events: tuple[str, list[RunEvent]] | None = None
    ) -> None:
        saver = self.checkpointer
        now = utcnow_iso()
        rows = _event_rows(run_id, events, now)

        def update() -> None:
            with saver.write_transaction() as cur:
                if rows:
                    cur.executemany(_INSERT_EVENTS, rows)
                cur.execute(
                    "UPDATE runs SET status = ?, cancel = NULL, updated_at = ? WHERE run_id = ?",
                    (status, now, run_id),
                )

        await saver.run_write("run", update, single=True)

    async def next_pending_runs(self, limit: int, worker: str = "") -> list[RunRecord]:
        rows = await self.checkpointer.run_read(
            "queue",
            self.checkpointer.read_all,
            NEXT_PENDING_SQL.format(collate="", m="?"),
            (worker, iso_utc(own_first_cutoff()), limit),
            point=True,  # a few rows of the partial index of active runs
        )
        return [run_record(row) for row in rows]

    async def claim_run(self, run_id: str, thread_id: str, worker: str) -> int | None:
        saver = self.checkpointer
        now = utcnow_iso()

        def claim() -> int | None:
            with saver.write_transaction() as cur:
                cur.execute(CLAIM_RUN_SQL.format(m="?", now="?"), (worker, now, run_id))
                if not cur.rowcount:
                    return None
                cur.execute(STALE_ON_THREAD_SQL.format(m="?", now="?"), (now, thread_id, run_id))
                return cur.rowcount

        return await saver.run_write("run", claim, single=True)

    async def cancel_run(self, run_id: str, action: CancelAction) -> RunStatus | None:
        saver = self.checkpointer
        now = utcnow_iso()

        def cancel() -> RunStatus | None:
            with saver.write_transaction() as cur:
                if action == "rollback":
                    cur.execute(DELETE_PENDING_SQL.format(m="?"), (run_id,))
                else:
                    cur.execute(CANCEL_PENDING_SQL.format(m="?", now="?"), (now, run_id))
                if cur.rowcount:
                    return "pending"
                cur.execute(REQUEST_CANCEL_SQL.format(m="?", now="?"), (action, now, run_id))
                return "running" if cur.rowcount else None

        return await saver.run_write("run", cancel, single=True)

    async def cancel_requests(self, worker: str) -> dict[str, CancelAction]:
        rows = await self.checkpointer.run_read(
            "queue",
            self.checkpointer.read_all,
            CANCEL_REQUESTS_SQL.format(m="?"),
            (worker,),
            point=True,  # a few rows of the partial index of active runs
        )
        return {run_id: action for run_id, action in rows}

    async def active_runs(self, thread_id: str | None) -> list[RunRecord]:
        where = ACTIVE_RUN_FILTER + (" AND thread_id = ?" if thread_id else "")
        rows = await self.checkpointer.run_read(
            "run",
            self.checkpointer.read_all,
            f"SELECT {RUN_COLUMNS} FROM runs WHERE {where} ORDER BY run_id",
            (thread_id,) if thread_id else (),
            point=thread_id is not None,  # one thread's: a few rows of the partial index
        )
        return [run_record(row) for row in rows]

    async def queue_stats(self) -> tuple[int, str | None]:
        count, oldest = await self.checkpointer.run_read(
            "queue", self.checkpointer.read_one, QUEUE_STATS_SQL
        )
        return int(count), oldest

    # --- assistants -------------------------------------------------------------------
    async def create_assistant(self, record: AssistantRecord) -> bool:
        saver = self.checkpointer
        now = record.created_at or utcnow_iso()

        def create() -> bool:
            with saver.write_transaction() as cur:
                cur.execute(INSERT_ASSISTANT_SQL.format(m="?"), (record.assistant_id, now, now))
                if cur.rowcount == 0:
                    return False
                cur.execute(INSERT_VERSION_SQL.format(m="?"), version_params(record, 1, now))
                return True

        return await saver.run_write("assistant", create)

    async def add_assistant_version(self, record: AssistantRecord) -> AssistantRecord | None:
        saver = self.checkpointer
        now = utcnow_iso()

        def add() -> bool:
            with saver.write_transaction() as cur:
                last = cur.execute(
                    LAST_VERSION_SQL.format(m="?"), (record.assistant_id,)
                ).fetchone()[0]
                if last is None:
                    return False
                cur.execute(INSERT_VERSION_SQL.format(m="?"), version_params(record, last + 1, now))
                cur.execute(
                    SET_VERSION_SQL.format(m="?"),
                    (last + 1, now, record.assistant_id, record.assistant_id, last + 1),
                )
                return True

        if not await saver.run_write("assistant", add):
            return None
        return await self.get_assistant(record.assistant_id)

    async def set_assistant_version(self, assistant_id: str, version: int) -> bool:
        params = (version, utcnow_iso(), assistant_id, assistant_id, version)
        return await self._changed(SET_VERSION_SQL.format(m="?"), params)

    async def get_assistant(self, assistant_id: str) -> AssistantRecord | None:
        row = await self.checkpointer.run_read(
            "assistant",
            self.checkpointer.read_one,
            f"{LATEST_SQL} WHERE a.assistant_id = ?",
            (assistant_id,),
            point=True,
        )
        return assistant_record(row) if row else None

    async def list_assistants(self) -> list[AssistantRecord]:
        rows = await self.checkpointer.run_read(
            "assistant",
            self.checkpointer.read_all,
            f"{LATEST_SQL} ORDER BY a.created_at, a.assistant_id",
        )
        return [assistant_record(row) for row in rows]

    async def list_assistant_versions(self, assistant_id: str) -> list[AssistantRecord]:
        rows = await self.checkpointer.run_read(
            "assistant",
            self.checkpointer.read_all,
            VERSIONS_SQL.format(m="?"),
            (assistant_id,),
        )
        return [assistant_record(row) for row in rows]

    async def delete_assistant(self, assistant_id: str) -> bool:
        saver = self.checkpointer

        def delete() -> bool:
            with saver.write_transaction() as cur:
                deleted = 0
                for sql in DELETE_ASSISTANT_SQL:
                    deleted += cur.execute(sql.format(m="?"), (assistant_id,)).rowcount
                return deleted > 0

        return await saver.run_write("assistant", delete)

    # --- crons ------------------------------------------------------------------------
    async def save_cron(self, cron: CronRecord) -> None:
        sql = SAVE_CRON_SQL.format(marks=", ".join("?" * 14))
        await self._changed(sql, cron_params(cron))

    async def get_cron(self, cron_id: str) -> CronRecord | None:
        row = await self.checkpointer.run_read(
            "run",
            self.checkpointer.read_one,
            f"SELECT {CRON_COLUMNS} FROM crons WHERE cron_id = ?",
            (cron_id,),
        )
        return cron_record(row) if row else None

    async def delete_cron(self, cron_id: str) -> bool:
        return await self._changed("DELETE FROM crons WHERE cron_id = ?", (cron_id,))

    async def list_crons(
        self, assistant_id: str | None, thread_id: str | None, enabled: bool | None
    ) -> list[CronRecord]:
        where, params = cron_filter(assistant_id, thread_id, enabled, "?")
        rows = await self.checkpointer.run_read(
            "run",
            self.checkpointer.read_all,
            f"SELECT {CRON_COLUMNS} FROM crons{where} ORDER BY created_at, cron_id",
            params,
        )
        return [cron_record(row) for row in rows]

    async def due_crons(self, now: str, limit: int) -> list[CronRecord]:
        rows = await self.checkpointer.run_read(
            "queue",
            self.checkpointer.read_all,
            DUE_CRONS_SQL.format(true="1", m="?"),
            (now, limit),
        )
        return [cron_record(row) for row in rows]

    async def advance_cron(
        self, cron_id: str, fired: str, next_run_date: str | None, enabled: bool
    ) -> bool:
        sql = ADVANCE_CRON_SQL.format(m="?")
        return await self._changed(sql, (next_run_date, enabled, utcnow_iso(), cron_id, fired))

    async def _changed(self, sql: str, params: tuple[Any, ...]) -> bool:
        saver = self.checkpointer

        def write() -> bool:
            with saver.write_transaction() as cur:
                cur.execute(sql, params)
                return cur.rowcount > 0

        return await saver.run_write("run", write, single=True)

    async def append_run_events(self, thread_id: str, run_id: str, events: list[RunEvent]) -> None:
        saver = self.checkpointer
        rows = _event_rows(run_id, (thread_id, events), utcnow_iso())

        def insert() -> None:
            with saver.write_transaction() as cur:
                cur.executemany(_INSERT_EVENTS, rows)

        await saver.run_write("run", insert, single=True)

    async def run_events_after(self, run_id: str, after: int, limit: int) -> list[RunEvent]:
        rows = await self.checkpointer.run_read(
            "run",
            self.checkpointer.read_all,
            EVENTS_AFTER_SQL.format(m="?"),
            (run_id, after, limit),
        )
        return [(int(seq), event, data) for seq, event, data in rows]

    async def get_run(self, thread_id: str, run_id: str) -> RunRecord | None:
        row = await self.checkpointer.run_read(
            "run",
            self.checkpointer.read_one,
            f"SELECT {RUN_COLUMNS} FROM runs WHERE thread_id = ? AND run_id = ?",
            (thread_id, run_id),
            point=True,
        )
        return run_record(row) if row else None

    async def run_statuses(self, run_ids: list[str]) -> dict[str, RunStatus]:
        found: dict[str, RunStatus] = {}
        for start in range(0, len(run_ids), RUN_STATUSES_MAX):
            chunk = run_ids[start : start + RUN_STATUSES_MAX]
            rows = await self.checkpointer.run_read(
                "run",
                self.checkpointer.read_all,
                RUN_STATUSES_SQL.format(marks=",".join("?" * len(chunk))),
                tuple(chunk),
                point=True,  # primary-key lookups
            )
            found.update((run_id, status) for run_id, status in rows)
        return found

    async def list_runs(
        self, thread_id: str, status: RunStatus | None, limit: int, offset: int
    ) -> list[RunRecord]:
        params = (thread_id, status) if status else (thread_id,)
        rows = await self.checkpointer.run_read(
            "run",
            self.checkpointer.read_all,
            f"SELECT {RUN_COLUMNS} FROM runs {run_list_where(status, '?')} "
            "ORDER BY created_at DESC, run_id LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return [run_record(row) for row in rows]

    async def delete_run(self, thread_id: str, run_id: str) -> bool:
        saver = self.checkpointer

        def delete() -> bool:
            with saver.write_transaction() as cur:
                cur.execute(
                    f"DELETE FROM runs WHERE {DELETE_RUN_WHERE.format(m='?')}", (thread_id, run_id)
                )
                return cur.rowcount > 0

        return await saver.run_write("run", delete)

    # --- health and facts -------------------------------------------------------------
    async def check_ready(self) -> None:
        """A real read, a look at the disk, and after a write fault a real write."""
        await self.checkpointer.run_read(
            "get", self.checkpointer.read_one, "SELECT count(*) FROM threads LIMIT 1"
        )
        disk = os.statvfs(self.path.parent)
        if disk.f_flag & os.ST_RDONLY or unwritable_files(self.path):
            self.checkpointer.write_fault = "readonly"
            raise StorageUnavailableError(FAULT_MESSAGES["readonly"])
        if disk.f_bavail * disk.f_frsize < MIN_FREE_BYTES:
            raise StorageUnavailableError(
                f"less than {MIN_FREE_BYTES // 1024} KiB free on the disk holding {self.path}"
            )
        if self.checkpointer.write_fault:
            await self.checkpointer.run_write("thread", self.checkpointer.probe_write)

    def connection_settings(self) -> dict[str, Any]:
        saver = self.checkpointer
        with saver.lock:
            reader = effective_pragmas(saver.conn)
        with saver._write_lock:
            writer = effective_pragmas(saver.writer)
        return {"reader": reader, "writer": writer}

    def refresh_gauges(self) -> None:
        """The files' sizes, and the free pages inside the database, read now."""
        set_file_gauges(self.path)
        saver = self.checkpointer
        try:
            # The reader runs in autocommit, so it sees the latest commit of every worker.
            with saver.lock:
                freelist = saver.conn.execute("PRAGMA freelist_count").fetchone()[0]
                page_size = saver.conn.execute("PRAGMA page_size").fetchone()[0]
                counts = dict(saver.conn.execute(STATUS_COUNTS_SQL).fetchall())
            metrics.SQLITE_FREELIST_PAGES.set(freelist)
            metrics.SQLITE_PAGE_SIZE.set(page_size)
            set_status_gauges(counts)
        except Exception:
            log.warning("could not read SQLite page and thread counts", exc_info=True)

    def info(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "database": str(self.path),
            "sqlite_version": SQLITE_VERSION,
            "sqlite_driver": DRIVER_NAME,
            "connection_settings": self.connection_settings(),
            "files": sqlite_file_sizes(self.path),
        }

    async def aclose(self) -> None:
        await self.maintenance.stop()
        self.checkpointer.close()
        self.guard.close()
