"""Maintenance of the SQLite checkpoint database: retention, TTL, WAL, vacuum, backup.

Every function opens its own short-lived connection, so the sweeper (in the
maintenance leader) and the CLI can run while the service serves traffic. Deletes
go one thread per transaction: no write transaction holds the lock for long, so
live turns keep their latency during a sweep.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from service.settings import Settings
from service.storage.records import iso_utc, utcnow_iso
from service.storage.run_events import EXPIRED_EVENTS_SQL
from service.storage.run_records import ACTIVE_RUNS_SQL, STALE_RUN_SQL
from service.storage.sqlite.driver import connect, immediate, sqlite3
from service.storage.sqlite.links import collect_links
from service.storage.sqlite.store import sweep_sqlite_store

Progress = Callable[[int, int], None]


@contextmanager
def maintenance_connection(
    path: Path, settings: Settings, *, busy_timeout_ms: int | None = None
) -> Iterator[Any]:
    conn = connect(path, settings)
    if busy_timeout_ms is not None:
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    try:
        yield conn
    finally:
        conn.close()


def delete_thread_rows(cur: Any, thread_id: str) -> bool:
    """Inside the caller's write transaction: a thread's checkpoints, writes and record.

    Returns whether the thread had a record.
    """
    existed = False
    tables = ("checkpoints", "writes", "checkpoint_messages", "runs", "run_events", "crons")
    for table in (*tables, "threads"):
        existed = cur.execute(f"DELETE FROM {table} WHERE thread_id = ?", (thread_id,)).rowcount > 0
    return existed


def expired_threads(
    conn: Any, ttl_days: float, limit: int, *, without_own_ttl: bool = False
) -> list[str]:
    """Threads whose last activity is older than `ttl_days`, oldest first.

    `without_own_ttl`: only those without a TTL of their own (THREAD_TTL_DAYS's share;
    the CLI's `--older-than-days` takes them all).
    """
    stamp = iso_utc(dt.datetime.now(dt.UTC) - dt.timedelta(days=ttl_days))
    own = " AND ttl_minutes IS NULL" if without_own_ttl else ""
    rows = conn.execute(
        f"SELECT thread_id FROM threads WHERE updated_at < ?{own} ORDER BY updated_at LIMIT ?",
        (stamp, limit),
    ).fetchall()
    return [row[0] for row in rows]


def expired_by_own_ttl(conn: Any, limit: int) -> list[str]:
    """Threads with a TTL of their own whose last activity is older than it."""
    rows = conn.execute(
        "SELECT thread_id FROM threads WHERE ttl_minutes IS NOT NULL AND updated_at < "
        "strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-' || ttl_minutes || ' minutes') "
        "ORDER BY updated_at LIMIT ?",
        (limit,),
    ).fetchall()
    return [row[0] for row in rows]


def threads_over_retention(conn: Any, keep: int, limit: int) -> list[str]:
    rows = conn.execute(
        "SELECT thread_id FROM checkpoints WHERE checkpoint_ns = '' "
        "GROUP BY thread_id HAVING count(*) > ? LIMIT ?",
        (keep, limit),
    ).fetchall()
    return [row[0] for row in rows]


def prune_rows(cur: Any, thread_id: str, keep: int) -> int:
    """Keep the newest `keep` checkpoints of each namespace (0: none), their writes, and
    the message links they reach.

    Runs inside the caller's write transaction; returns checkpoints removed.
    """
    if keep <= 0:
        removed = cur.execute("DELETE FROM checkpoints WHERE thread_id = ?", (thread_id,)).rowcount
        cur.execute("DELETE FROM writes WHERE thread_id = ?", (thread_id,))
        cur.execute("DELETE FROM checkpoint_messages WHERE thread_id = ?", (thread_id,))
        return removed
    removed = cur.execute(
        """
        DELETE FROM checkpoints WHERE thread_id = ?1 AND rowid NOT IN (
            SELECT rowid FROM (
                SELECT rowid, row_number() OVER (
                    PARTITION BY checkpoint_ns ORDER BY checkpoint_id DESC) AS rn
                FROM checkpoints WHERE thread_id = ?1
            ) WHERE rn <= ?2
        )
        """,
        (thread_id, keep),
    ).rowcount
    cur.execute(
        """
        DELETE FROM writes WHERE thread_id = ?1 AND NOT EXISTS (
            SELECT 1 FROM checkpoints c WHERE c.thread_id = ?1
            AND c.checkpoint_ns = writes.checkpoint_ns
            AND c.checkpoint_id = writes.checkpoint_id
        )
        """,
        (thread_id,),
    )
    if removed:
        collect_links(cur, thread_id)
    return removed


def prune_thread_rows(conn: Any, thread_id: str, keep: int) -> int:
    """`prune_rows` in a transaction of its own."""
    with immediate(conn):
        return prune_rows(conn, thread_id, keep)


def wal_bytes(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


def checkpoint_wal(conn: Any, mode: str = "TRUNCATE") -> tuple[int, int, int]:
    """(busy, wal pages, pages copied). busy=1 means readers kept it from finishing."""
    if mode not in ("PASSIVE", "FULL", "RESTART", "TRUNCATE"):
        raise ValueError(f"unknown WAL checkpoint mode {mode!r}")
    return tuple(conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone())  # type: ignore[return-value]


def incremental_vacuum(conn: Any, pages: int | None = None) -> int:
    """Return free pages to the file system (auto_vacuum=INCREMENTAL). Returns pages freed."""
    before = conn.execute("PRAGMA freelist_count").fetchone()[0]
    arg = "" if pages is None else f"({int(pages)})"
    conn.execute(f"PRAGMA incremental_vacuum{arg}").fetchall()
    return before - conn.execute("PRAGMA freelist_count").fetchone()[0]


@dataclass
class SweepReport:
    expired_deleted: int = 0
    threads_compacted: int = 0
    checkpoints_removed: int = 0
    pages_freed: int = 0
    wal_checkpoint: str = "skipped"
    wal_bytes_after: int = 0
    skipped_busy: int = 0
    stale_runs: int = 0
    expired_events: int = 0
    expired_store_items: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def fail_stale_runs(conn: Any, is_busy: Callable[[str], bool]) -> int:
    """Runs still `running` on a thread nobody holds: their worker died. Mark them error.

    A run holds its thread from before its record says `running` until after it says
    how it ended, so a thread that is free has no live run.
    """
    stale = [
        run_id for run_id, thread_id in conn.execute(ACTIVE_RUNS_SQL) if not is_busy(thread_id)
    ]
    for run_id in stale:
        with immediate(conn):
            conn.execute(STALE_RUN_SQL.format(now="?", m="?"), (utcnow_iso(), run_id))
    return len(stale)


def expire_run_events(conn: Any, ttl_s: float) -> int:
    """Resumable streams' events older than RESUMABLE_STREAM_TTL_S."""
    cutoff = iso_utc(dt.datetime.now(dt.UTC) - dt.timedelta(seconds=ttl_s))
    with immediate(conn):
        return conn.execute(EXPIRED_EVENTS_SQL.format(m="?"), (cutoff,)).rowcount


def sweep(
    path: Path,
    settings: Settings,
    *,
    is_busy: Callable[[str], bool] = lambda _: False,
    max_batches: int = 10,
) -> SweepReport:
    """One maintenance pass: TTL, retention, free pages, and the WAL."""
    report = SweepReport()
    batch = settings.maintenance_batch_size
    with maintenance_connection(path, settings) as conn:
        report.stale_runs = fail_stale_runs(conn, is_busy)
        report.expired_events = expire_run_events(conn, settings.resumable_stream_ttl_s)
        report.expired_store_items = sweep_sqlite_store(conn, settings)
        finders = [expired_by_own_ttl]
        if settings.thread_ttl_days > 0:
            days = settings.thread_ttl_days
            finders.append(lambda c, n: expired_threads(c, days, n, without_own_ttl=True))
        for find in finders:
            for _ in range(max_batches):
                listed = find(conn, batch)
                expired = [t for t in listed if not is_busy(t)]
                for thread_id in expired:
                    with immediate(conn):
                        delete_thread_rows(conn, thread_id)
                report.expired_deleted += len(expired)
                if len(listed) < batch or len(expired) < len(listed):
                    break
        keep = settings.keep_last_checkpoints
        if keep:
            for _ in range(max_batches):
                candidates = threads_over_retention(conn, keep, batch)
                for thread_id in candidates:
                    if is_busy(thread_id):
                        report.skipped_busy += 1
                        continue
                    report.checkpoints_removed += prune_thread_rows(conn, thread_id, keep)
                    report.threads_compacted += 1
                if len(candidates) < batch or report.skipped_busy:
                    break
        report.pages_freed = incremental_vacuum(conn, 2000)
    report.wal_checkpoint = manage_wal(path, settings)
    report.wal_bytes_after = wal_bytes(path)
    return report


def manage_wal(path: Path, settings: Settings) -> str:
    """PASSIVE always (never blocks); TRUNCATE once the WAL is large, with a short wait."""
    size = wal_bytes(path)
    mode = "TRUNCATE" if size > settings.wal_truncate_bytes else "PASSIVE"
    with maintenance_connection(path, settings, busy_timeout_ms=250) as conn:
        try:
            busy, _, _ = checkpoint_wal(conn, mode)
        except sqlite3.OperationalError:
            return f"{mode.lower()}-busy"
    return mode.lower() if not busy else f"{mode.lower()}-incomplete"


@dataclass
class Stats:
    threads: int
    checkpoints: int
    writes: int
    checkpoint_bytes: int
    db_bytes: int
    wal_bytes: int
    freelist_pages: int
    page_size: int
    oldest_activity: str | None
    newest_activity: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def stats(path: Path, settings: Settings) -> Stats:
    with maintenance_connection(path, settings) as conn:
        threads, oldest, newest = conn.execute(
            "SELECT count(*), min(updated_at), max(updated_at) FROM threads"
        ).fetchone()
        checkpoints, blob_bytes = conn.execute(
            "SELECT count(*), coalesce(sum(length(checkpoint) + length(metadata)), 0) "
            "FROM checkpoints"
        ).fetchone()
        writes, write_bytes = conn.execute(
            "SELECT count(*), coalesce(sum(length(value)), 0) FROM writes"
        ).fetchone()
        freelist = conn.execute("PRAGMA freelist_count").fetchone()[0]
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    return Stats(
        threads=threads,
        checkpoints=checkpoints,
        writes=writes,
        checkpoint_bytes=blob_bytes + write_bytes,
        db_bytes=path.stat().st_size,
        wal_bytes=wal_bytes(path),
        freelist_pages=freelist,
        page_size=page_size,
        oldest_activity=oldest,
        newest_activity=newest,
    )


def integrity_check(path: Path, settings: Settings) -> list[str]:
    """[] when the database is sound, else SQLite's complaints."""
    with maintenance_connection(path, settings) as conn:
        rows = [row[0] for row in conn.execute("PRAGMA integrity_check").fetchall()]
    return [] if rows == ["ok"] else rows


def vacuum(path: Path, settings: Settings) -> tuple[int, int]:
    """Full VACUUM (rewrites the file; takes the write lock). Returns sizes before/after."""
    before = path.stat().st_size
    with maintenance_connection(path, settings) as conn:
        conn.execute("VACUUM")
        checkpoint_wal(conn, "TRUNCATE")
    return before, path.stat().st_size


def backup(
    path: Path, settings: Settings, destination_dir: Path, *, progress: Progress | None = None
) -> Path:
    """Online, consistent copy through SQLite's backup API, verified before it is kept."""
    destination_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = destination_dir / f"{path.stem}-{stamp}.db"
    partial = target.with_suffix(".db.partial")
    with maintenance_connection(path, settings) as source:
        dest = sqlite3.connect(str(partial))
        try:

            def step(status: int, remaining: int, total: int) -> None:
                if progress:
                    progress(total - remaining, total)

            # Small steps let writers in between; each step sees a consistent snapshot
            # and the API restarts if the source changes under another connection.
            source.backup(dest, pages=256, progress=step, sleep=0.001)
            dest.execute("PRAGMA journal_mode=DELETE")
            result = dest.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            dest.close()
    if result != "ok":
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"backup failed its integrity check: {result}")
    partial.rename(target)
    return target


def restore(backup_file: Path, path: Path, settings: Settings) -> Path:
    """Replace the database with a backup, keeping the current file aside. Service stopped."""
    problems = integrity_check(backup_file, settings)
    if problems:
        raise RuntimeError(f"{backup_file} is not a sound database: {problems[:3]}")
    aside = path.with_name(f"{path.name}.before-restore-{int(time.time())}")
    if path.exists():
        with maintenance_connection(path, settings) as conn:
            checkpoint_wal(conn, "TRUNCATE")
        path.rename(aside)
        for suffix in ("-wal", "-shm"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)
    shutil.copyfile(backup_file, path)
    with maintenance_connection(path, settings) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
    return aside
