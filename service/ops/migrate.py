"""`python -m service migrate`: copy every thread from SQLite to PostgreSQL, then verify.

Each thread goes over in one PostgreSQL transaction: its message links (byte for
byte), its checkpoints (re-split into the PostgreSQL saver's checkpoint row plus
channel blobs), its pending writes (byte for byte), its `threads` record, and a row in
`service_migrated_threads` that remembers what was copied. A second run skips
every thread whose source has not changed since and copies the rest again, so
the command is resumable after any interruption and idempotent; inserts use
ON CONFLICT DO NOTHING. Run it once while the old service still serves, then
once more after stopping it, to catch the last turns.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psycopg import AsyncConnection
from tqdm import tqdm

from service.bookings.postgres import PostgresBookingDatabase
from service.settings import Settings
from service.storage.assistant_records import VERSION_COLUMNS
from service.storage.cron_records import CRON_COLUMNS
from service.storage.postgres.links import INSERT_LINK_SQL
from service.storage.postgres.pool import new_pool
from service.storage.postgres.saver import (
    DELETE_THREAD_SQL,
    PostgresCheckpointer,
    split_checkpoint,
)
from service.storage.postgres.schema import init_postgres
from service.storage.run_records import RUN_COLUMNS
from service.storage.sqlite.driver import sqlite3
from service.storage.sqlite.saver import SqliteCheckpointer

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_MISMATCH = 3

MARKERS_DDL = """
CREATE TABLE IF NOT EXISTS service_migrated_threads (
    thread_id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    checkpoints INTEGER NOT NULL,
    writes INTEGER NOT NULL,
    last_checkpoint_id TEXT,
    migrated_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""
INSERT_CHECKPOINT_SQL = """
INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
    checkpoint, metadata, messages_head)
VALUES (%s, %s, %s, %s, %s::jsonb, %s::jsonb, %s)
ON CONFLICT DO NOTHING
"""
SOURCE_LINKS_SQL = """
SELECT checkpoint_ns, link_id, prev_id, count, depth, since_snapshot, snapshot_bytes, type,
    messages
FROM checkpoint_messages WHERE thread_id = ? ORDER BY depth, link_id
"""
INSERT_WRITE_SQL = """
INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path,
    idx, channel, type, blob)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT DO NOTHING
"""
INSERT_THREAD_SQL = """
INSERT INTO threads (thread_id, created_at, updated_at, metadata, status, error, ttl_minutes)
VALUES (%s, coalesce(%s::timestamptz, now()), coalesce(%s::timestamptz, now()),
    coalesce(%s::jsonb, '{}'), coalesce(%s, 'idle'), %s, %s)
ON CONFLICT (thread_id) DO NOTHING
"""
MARK_SQL = """
INSERT INTO service_migrated_threads (thread_id, source, checkpoints, writes, last_checkpoint_id)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (thread_id) DO UPDATE SET source = EXCLUDED.source,
    checkpoints = EXCLUDED.checkpoints, writes = EXCLUDED.writes,
    last_checkpoint_id = EXCLUDED.last_checkpoint_id, migrated_at = now()
"""
INSERT_RUN_SQL = f"""
INSERT INTO runs ({RUN_COLUMNS})
VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s::timestamptz, %s::timestamptz, %s)
ON CONFLICT (run_id) DO NOTHING
"""
INSERT_CRON_SQL = f"""
INSERT INTO crons ({CRON_COLUMNS}) VALUES ({", ".join(["%s"] * 14)})
ON CONFLICT (cron_id) DO NOTHING
"""
# The Store API's items, in langgraph's store tables (the same columns on both backends).
STORE_COLUMNS = "prefix, key, value, created_at, updated_at, expires_at, ttl_minutes"
INSERT_STORE_ITEM_SQL = f"""
INSERT INTO store ({STORE_COLUMNS})
VALUES (%s, %s, %s::jsonb, %s::timestamptz, %s::timestamptz, %s::timestamptz, %s)
ON CONFLICT (prefix, key) DO UPDATE SET value = EXCLUDED.value,
    created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at,
    expires_at = EXCLUDED.expires_at, ttl_minutes = EXCLUDED.ttl_minutes
"""
ASSISTANT_COLUMNS = "assistant_id, version, created_at, updated_at"
INSERT_ASSISTANT_ROW_SQL = (
    f"INSERT INTO assistants ({ASSISTANT_COLUMNS}) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (assistant_id) DO NOTHING"
)
INSERT_VERSION_ROW_SQL = (
    f"INSERT INTO assistant_versions ({VERSION_COLUMNS}) VALUES ({', '.join(['%s'] * 9)}) "
    "ON CONFLICT (assistant_id, version) DO NOTHING"
)
APPOINTMENT_COLUMNS = (
    "confirmation_code, service, starts_at, customer_name, contact, status, "
    "idempotency_key, created_at, cancelled_at"
)


class MigrationError(Exception):
    """A usage or connection problem: nothing to verify (exit code 1)."""


@dataclass
class Summary:
    """What the source holds for one thread: what decides whether it is copied again."""

    checkpoints: int = 0
    writes: int = 0
    last_checkpoint_id: str | None = None


@dataclass
class MigrationReport:
    threads: int = 0
    copied: int = 0
    skipped: int = 0
    checkpoints: int = 0
    writes: int = 0
    appointments: int = 0
    store_items: int = 0
    assistants: int = 0
    sampled: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_MISMATCH if self.problems else EXIT_OK


def parse_source(value: str) -> Path:
    if not value.startswith("sqlite:"):
        raise MigrationError(f"--from must be sqlite:PATH, got {value!r}")
    path = Path(value.removeprefix("sqlite:"))
    if not path.is_file():
        raise MigrationError(f"no SQLite database at {path}")
    return path


def parse_target(value: str) -> str:
    if value.startswith(("postgres://", "postgresql://")):
        return value
    if value.startswith("postgres:"):
        return value.removeprefix("postgres:")
    raise MigrationError(f"--to must be postgres:URL, got {value!r}")


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _utc(stamp: str | None) -> str | None:
    """SQLite's CURRENT_TIMESTAMP is UTC without an offset; Python's carries one."""
    if stamp is None or stamp.endswith("Z") or "+" in stamp[19:] or "-" in stamp[19:]:
        return stamp
    return stamp + "+00:00"


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Migration:
    """One run of the copy from `source` (SQLite) to `target` (PostgreSQL)."""

    def __init__(self, source: Path, target: str, settings: Settings, batch_size: int) -> None:
        self.source = source
        self.target = target
        self.settings = settings.model_copy(
            update={"checkpointer": "postgres", "database_url": target}
        )
        self.batch_size = max(1, batch_size)
        self.src: Any = None
        self.source_has_ttl = False
        self.source_has_runs = False
        self.source_has_crons = False
        self.pool: Any = None
        self.saver: PostgresCheckpointer | None = None

    # --- source ------------------------------------------------------------------------
    def summaries(self) -> dict[str, Summary]:
        found: dict[str, Summary] = {}
        for thread_id, count, last in self.src.execute(
            "SELECT thread_id, count(*), max(checkpoint_id) FROM checkpoints GROUP BY thread_id"
        ):
            found[thread_id] = Summary(count, 0, last)
        for thread_id, count in self.src.execute(
            "SELECT thread_id, count(*) FROM writes GROUP BY thread_id"
        ):
            found.setdefault(thread_id, Summary()).writes = count
        for (thread_id,) in self.src.execute("SELECT thread_id FROM threads"):
            found.setdefault(thread_id, Summary())
        return found

    # --- copy --------------------------------------------------------------------------
    async def copy_thread(
        self, conn: AsyncConnection[Any], thread_id: str, summary: Summary
    ) -> None:
        assert self.saver is not None
        async with conn.transaction():
            for sql in DELETE_THREAD_SQL:  # a changed source thread is copied anew, whole
                await conn.execute(sql, (thread_id,))
            # Message links go over byte for byte, before the checkpoints naming them.
            rows = self.src.execute(SOURCE_LINKS_SQL, (thread_id,))
            while batch := rows.fetchmany(self.batch_size):
                async with conn.cursor() as cur:
                    await cur.executemany(INSERT_LINK_SQL, [(thread_id, *row) for row in batch])
            rows = self.src.execute(
                "SELECT checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, "
                "metadata, messages_head FROM checkpoints WHERE thread_id = ? "
                "ORDER BY checkpoint_id",
                (thread_id,),
            )
            while batch := rows.fetchmany(self.batch_size):
                await self._copy_checkpoints(conn, thread_id, batch)
            rows = self.src.execute(
                "SELECT checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, "
                "value FROM writes WHERE thread_id = ?",
                (thread_id,),
            )
            while batch := rows.fetchmany(self.batch_size):
                async with conn.cursor() as cur:
                    await cur.executemany(INSERT_WRITE_SQL, [(thread_id, *row) for row in batch])
            # A file from before schema 3 has no per-thread TTL column.
            ttl = "ttl_minutes" if self.source_has_ttl else "NULL"
            record = self.src.execute(
                f"SELECT created_at, updated_at, metadata, status, error, {ttl} FROM threads "
                "WHERE thread_id = ?",
                (thread_id,),
            ).fetchone() or (None, None, None, None, None, None)
            await conn.execute(INSERT_THREAD_SQL, (thread_id, *record))
            if self.source_has_runs:
                rows = self.src.execute(
                    f"SELECT {RUN_COLUMNS} FROM runs WHERE thread_id = ?", (thread_id,)
                )
                while batch := rows.fetchmany(self.batch_size):
                    async with conn.cursor() as cur:
                        await cur.executemany(INSERT_RUN_SQL, batch)
            await self.copy_crons(conn, "thread_id = ?", (thread_id,))
            await conn.execute(
                MARK_SQL,
                (
                    thread_id,
                    str(self.source),
                    summary.checkpoints,
                    summary.writes,
                    summary.last_checkpoint_id,
                ),
            )

    async def copy_crons(
        self, conn: AsyncConnection[Any], where: str, params: tuple[Any, ...]
    ) -> None:
        """Crons (a thread's, or those without one) as they are, enabled as a boolean."""
        if not self.source_has_crons:
            return
        rows = self.src.execute(f"SELECT {CRON_COLUMNS} FROM crons WHERE {where}", params)
        crons = [(*row[:8], bool(row[8]), *row[9:]) for row in rows]
        if crons:
            async with conn.cursor() as cur:
                await cur.executemany(INSERT_CRON_SQL, crons)

    async def _copy_checkpoints(
        self, conn: AsyncConnection[Any], thread_id: str, batch: list[tuple[Any, ...]]
    ) -> None:
        assert self.saver is not None
        checkpoints, blobs = [], []
        for ns, checkpoint_id, parent_id, type_, payload, metadata, head in batch:
            checkpoint = self.saver.serde.loads_typed((type_, payload))
            inline, values = split_checkpoint(checkpoint)
            versions = {k: v for k, v in checkpoint["channel_versions"].items() if k in values}
            blobs.extend(self.saver._dump_blobs(thread_id, ns, values, versions))
            meta = metadata.decode("utf-8") if isinstance(metadata, bytes) else metadata
            checkpoints.append(
                (thread_id, ns, checkpoint_id, parent_id, json.dumps(inline), meta or "{}", head)
            )
        async with conn.cursor() as cur:
            if blobs:
                await cur.executemany(self.saver.UPSERT_CHECKPOINT_BLOBS_SQL, blobs)
            await cur.executemany(INSERT_CHECKPOINT_SQL, checkpoints)

    async def copy_store_items(self) -> int:
        """The Store API's items, as they are (timestamps and TTLs included); an item
        already in the target is overwritten, so a second run changes nothing."""
        if not self.src.execute("SELECT 1 FROM sqlite_master WHERE name = 'store'").fetchone():
            return 0
        copied = 0
        rows = self.src.execute(f"SELECT {STORE_COLUMNS} FROM store ORDER BY prefix, key")
        async with self.pool.connection() as conn:
            while batch := rows.fetchmany(self.batch_size):
                items = [
                    (prefix, key, _text(value), _utc(made), _utc(changed), _utc(expires), ttl)
                    for prefix, key, value, made, changed, expires, ttl in batch
                ]
                async with conn.transaction(), conn.cursor() as cur:
                    await cur.executemany(INSERT_STORE_ITEM_SQL, items)
                copied += len(items)
        return copied

    async def copy_assistants(self) -> int:
        """Stored assistants with every version, as they are; ones already there are kept."""
        if not self.src.execute("SELECT 1 FROM sqlite_master WHERE name = 'assistants'").fetchone():
            return 0
        heads = self.src.execute(f"SELECT {ASSISTANT_COLUMNS} FROM assistants").fetchall()
        versions = self.src.execute(f"SELECT {VERSION_COLUMNS} FROM assistant_versions").fetchall()
        async with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.executemany(INSERT_ASSISTANT_ROW_SQL, heads)
            await cur.executemany(INSERT_VERSION_ROW_SQL, versions)
        return len(heads)

    async def copy_appointments(self, path: Path) -> int:
        await asyncio.to_thread(PostgresBookingDatabase(self.target, self.settings).init_schema)
        src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = src.execute(f"SELECT {APPOINTMENT_COLUMNS} FROM appointments").fetchall()
        finally:
            src.close()
        marks = ", ".join(["%s"] * 9)
        async with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.executemany(
                f"INSERT INTO appointments ({APPOINTMENT_COLUMNS}) VALUES ({marks}) "
                "ON CONFLICT DO NOTHING",
                rows,
            )
        return len(rows)

    # --- verify ------------------------------------------------------------------------
    async def verify(self, summaries: dict[str, Summary], sample: int) -> tuple[list[str], int]:
        assert self.saver is not None
        problems: list[str] = []
        ids = sorted(summaries)
        threads = checkpoints = writes = 0
        async with self.pool.connection() as conn:
            for chunk in _chunks(ids, 1000):
                cur = await conn.execute(
                    "SELECT (SELECT count(*) FROM threads WHERE thread_id = ANY(%(t)s)) AS t, "
                    "(SELECT count(*) FROM checkpoints WHERE thread_id = ANY(%(t)s)) AS c, "
                    "(SELECT count(*) FROM checkpoint_writes WHERE thread_id = ANY(%(t)s)) AS w",
                    {"t": list(chunk)},
                )
                row = await cur.fetchone()
                threads, checkpoints, writes = (
                    threads + row["t"],
                    checkpoints + row["c"],
                    writes + row["w"],
                )
        expected = (
            len(ids),
            sum(s.checkpoints for s in summaries.values()),
            sum(s.writes for s in summaries.values()),
        )
        for name, want, have in zip(
            ("threads", "checkpoints", "writes"),
            expected,
            (threads, checkpoints, writes),
            strict=True,
        ):
            if want != have:
                problems.append(f"{name}: {want} in SQLite, {have} in PostgreSQL")
        return problems + await self._compare_states(ids, sample), min(sample, len(ids))

    async def _compare_states(self, ids: list[str], sample: int) -> list[str]:
        """The latest root checkpoint of sampled threads, loaded through both savers."""
        assert self.saver is not None
        problems = []
        reader = SqliteCheckpointer(self.source, self.settings)
        try:
            for thread_id in random.sample(ids, min(sample, len(ids))):
                config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
                old = reader.get_tuple(config)
                new = await self.saver.aget_tuple(config)
                if old is None and new is None:
                    continue
                if old is None or new is None or old.checkpoint["id"] != new.checkpoint["id"]:
                    problems.append(f"thread {thread_id}: latest checkpoint differs")
                elif old.checkpoint["channel_values"] != new.checkpoint["channel_values"]:
                    problems.append(f"thread {thread_id}: channel values differ")
        finally:
            reader.close()
        return problems

    # --- the whole run -----------------------------------------------------------------
    async def run(
        self, *, sample: int, appointments: Path | None, progress: bool
    ) -> MigrationReport:
        report = MigrationReport()
        await asyncio.to_thread(init_postgres, self.target)
        self.src = sqlite3.connect(f"file:{self.source}?mode=ro", uri=True)
        self.source_has_ttl = "ttl_minutes" in {
            row[1] for row in self.src.execute("PRAGMA table_info(threads)")
        }
        self.source_has_runs = bool(
            self.src.execute("SELECT 1 FROM sqlite_master WHERE name = 'runs'").fetchone()
        )
        self.source_has_crons = bool(
            self.src.execute("SELECT 1 FROM sqlite_master WHERE name = 'crons'").fetchone()
        )
        self.pool = new_pool(self.settings, "migrate", min_size=1, max_size=2)
        await self.pool.open(wait=True, timeout=30)
        try:
            self.saver = PostgresCheckpointer(self.pool)
            async with self.pool.connection() as conn:
                await conn.execute(MARKERS_DDL)
                cur = await conn.execute(
                    "SELECT thread_id, checkpoints, writes, last_checkpoint_id "
                    "FROM service_migrated_threads"
                )
                done = {
                    r["thread_id"]: Summary(r["checkpoints"], r["writes"], r["last_checkpoint_id"])
                    for r in await cur.fetchall()
                }
                summaries = self.summaries()
                report.threads = len(summaries)
                bar = tqdm(
                    total=len(summaries), desc="migrate", unit="thread", disable=not progress
                )
                with bar:
                    for thread_id in sorted(summaries):
                        summary = summaries[thread_id]
                        if done.get(thread_id) == summary:
                            report.skipped += 1
                        else:
                            await self.copy_thread(conn, thread_id, summary)
                            report.copied += 1
                            report.checkpoints += summary.checkpoints
                            report.writes += summary.writes
                        bar.update(1)
                        bar.set_postfix(copied=report.copied, skipped=report.skipped)
                await self.copy_crons(conn, "thread_id IS NULL", ())  # stateless crons
            report.store_items = await self.copy_store_items()
            report.assistants = await self.copy_assistants()
            if appointments is not None:
                report.appointments = await self.copy_appointments(appointments)
            report.problems, report.sampled = await self.verify(summaries, sample)
        finally:
            self.src.close()
            await self.pool.close()
        return report


def migrate(
    source: Path,
    target: str,
    settings: Settings,
    *,
    batch_size: int = 500,
    sample: int = 20,
    appointments: Path | None = None,
    progress: bool | None = None,
) -> MigrationReport:
    """Copy, then verify counts and a sample of states. Raises MigrationError on bad input."""
    migration = Migration(source, target, settings, batch_size)
    shown = sys.stderr.isatty() if progress is None else progress
    return asyncio.run(migration.run(sample=sample, appointments=appointments, progress=shown))
