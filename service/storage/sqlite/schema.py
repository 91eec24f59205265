"""Schema of the checkpoint database, created once before the workers fork.

The `checkpoints` and `writes` tables keep langgraph-checkpoint-sqlite's layout, so
a database written by the stock `SqliteSaver` opens here unchanged (migration:
none needed; `init_database` adds what is missing). The service adds a `threads`
table for the LangGraph Server thread API, and `checkpoint_messages` with a
`messages_head` column on `checkpoints` for the message links that keep full
history linear (`storage.message_chain`). `PRAGMA user_version` is the schema
version; an older file is upgraded in place at start.

`SqliteSaver.setup()` catches only the standard library's `sqlite3.OperationalError`,
so with a pysqlite3 connection it fails on `ALTER TABLE ... ADD COLUMN task_path`
even on a new file. The schema is therefore created here, by inspecting the table,
not by catching errors.
"""

from __future__ import annotations

import logging
from pathlib import Path

from service.settings import Settings
from service.storage.assistant_records import ASSISTANTS_DDL
from service.storage.sqlite.driver import DatabaseError, connect, immediate, storage_fault

log = logging.getLogger(__name__)

# 2: message links (`checkpoint_messages`, `checkpoints.messages_head`), full history.
# 3: an index of the threads that are not idle (interrupted, error), for the gauges,
#    `threads.ttl_minutes`, a thread's own TTL, and `runs`, one record a run.
# 4: `runs.cancel`, a cancel asked of the worker that runs the run.
# 5: `run_events`, the events of resumable streams, and `crons`, runs on a schedule.
# 6: `assistants` and `assistant_versions`, stored configurations of the graph.
# 7: `runs_pending`, the queue's index of pending runs by thread (without it, each pass
#    of the queue read every run ever recorded).
SCHEMA_VERSION = 7

# Threads with a TTL of their own, for the sweep (after the column exists in old files).
_TTL_INDEX = (
    "CREATE INDEX IF NOT EXISTS threads_own_ttl ON threads (updated_at) "
    "WHERE ttl_minutes IS NOT NULL"
)
_TABLES = """
CREATE TABLE IF NOT EXISTS checkpoints (
    thread_id TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL DEFAULT '',
    checkpoint_id TEXT NOT NULL,
    parent_checkpoint_id TEXT,
    type TEXT,
    checkpoint BLOB,
    metadata BLOB,
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id)
);
CREATE TABLE IF NOT EXISTS writes (
    thread_id TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL DEFAULT '',
    checkpoint_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    task_path TEXT NOT NULL DEFAULT '',
    idx INTEGER NOT NULL,
    channel TEXT NOT NULL,
    type TEXT,
    value BLOB,
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
);
CREATE TABLE IF NOT EXISTS checkpoint_messages (
    thread_id TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL DEFAULT '',
    link_id TEXT NOT NULL,
    prev_id TEXT,
    count INTEGER NOT NULL,
    depth INTEGER NOT NULL,
    since_snapshot INTEGER NOT NULL,
    snapshot_bytes INTEGER NOT NULL,
    type TEXT NOT NULL,
    messages BLOB NOT NULL,
    PRIMARY KEY (thread_id, checkpoint_ns, link_id)
);
CREATE TABLE IF NOT EXISTS threads (
    thread_id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL DEFAULT 'idle',
    error TEXT,
    ttl_minutes REAL
);
CREATE INDEX IF NOT EXISTS threads_updated_at ON threads (updated_at);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    thread_id TEXT NOT NULL,
    assistant_id TEXT NOT NULL,
    status TEXT NOT NULL,
    multitask_strategy TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    kwargs TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    worker TEXT NOT NULL DEFAULT '',
    cancel TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_thread ON runs (thread_id, created_at);
CREATE INDEX IF NOT EXISTS runs_active ON runs (status) WHERE status IN ('pending', 'running');
CREATE INDEX IF NOT EXISTS runs_pending ON runs (thread_id, run_id) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS threads_not_idle ON threads (status) WHERE status <> 'idle';
CREATE TABLE IF NOT EXISTS run_events (
    run_id TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS run_events_by_thread ON run_events (thread_id);
CREATE INDEX IF NOT EXISTS run_events_by_age ON run_events (created_at);
CREATE TABLE IF NOT EXISTS crons (
    cron_id TEXT PRIMARY KEY,
    assistant_id TEXT NOT NULL,
    thread_id TEXT,
    user_id TEXT,
    schedule TEXT NOT NULL,
    timezone TEXT,
    payload TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    enabled INTEGER NOT NULL DEFAULT 1,
    on_run_completed TEXT,
    end_time TEXT,
    next_run_date TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS crons_due ON crons (next_run_date) WHERE enabled = 1;
CREATE INDEX IF NOT EXISTS crons_by_thread ON crons (thread_id);
CREATE TABLE IF NOT EXISTS service_leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at REAL NOT NULL
);
"""


class CorruptDatabaseError(SystemExit):
    """The database file is damaged or not SQLite: refuse to start, say how to recover."""


def corrupt_database_message(path: Path, problem: str) -> str:
    return (
        f"{path} is not a usable SQLite database ({problem}). The service will not start on "
        "it, so nothing more is written to it. To recover: stop the service and copy the "
        f"file with its -wal and -shm files aside; then either restore the latest backup "
        f"(`python -m service restore BACKUP.db`) or salvage what is readable with "
        f"`sqlite3 {path} .recover | sqlite3 recovered.db`, check it with "
        "`python -m service integrity-check --db recovered.db` and move it into place "
        "(docs/PERSISTENCE.md, 'Corruption recovery')."
    )


def init_database(path: Path, settings: Settings) -> None:
    """Create or upgrade the schema after a quick integrity check. Run before forking."""
    try:
        _init_database(path, settings)
    except DatabaseError as exc:
        if storage_fault(exc) in ("busy", "full", "readonly"):
            raise
        raise CorruptDatabaseError(corrupt_database_message(path, str(exc))) from exc


def _init_database(path: Path, settings: Settings) -> None:
    conn = connect(path, settings)
    try:
        problems = [row[0] for row in conn.execute("PRAGMA quick_check(5)").fetchall()]
        if problems != ["ok"]:
            raise CorruptDatabaseError(corrupt_database_message(path, "; ".join(problems)))
        new_file = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
        if new_file:
            # Freed pages can then go back to the file system with
            # `PRAGMA incremental_vacuum`. Switching to WAL already wrote the header,
            # so the mode only takes effect through a VACUUM (instant on an empty file).
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
            conn.execute("VACUUM")
        if conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
            log.info("checkpoint database schema is current: %s", path)
            return  # nothing to write, so a start never needs the write lock
        with immediate(conn):
            for statement in (_TABLES + ASSISTANTS_DDL).split(";"):
                if statement.strip():
                    conn.execute(statement)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(writes)")}
            if "task_path" not in columns:
                conn.execute("ALTER TABLE writes ADD COLUMN task_path TEXT NOT NULL DEFAULT ''")
            columns = {row[1] for row in conn.execute("PRAGMA table_info(threads)")}
            if "ttl_minutes" not in columns:
                conn.execute("ALTER TABLE threads ADD COLUMN ttl_minutes REAL")
            conn.execute(_TTL_INDEX)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
            if "cancel" not in columns:
                conn.execute("ALTER TABLE runs ADD COLUMN cancel TEXT")
            # Rows written before version 2 have no head and keep their messages inline.
            columns = {row[1] for row in conn.execute("PRAGMA table_info(checkpoints)")}
            if "messages_head" not in columns:
                conn.execute("ALTER TABLE checkpoints ADD COLUMN messages_head TEXT")
            # Threads written by a plain LangGraph script (or an older database)
            # become visible to the thread API.
            conn.execute(
                """
                INSERT OR IGNORE INTO threads (thread_id, created_at, updated_at)
                SELECT thread_id, strftime('%Y-%m-%dT%H:%M:%fZ'), strftime('%Y-%m-%dT%H:%M:%fZ')
                FROM checkpoints GROUP BY thread_id
                """
            )
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        log.info("checkpoint database ready: %s (journal_mode=%s)", path, mode)
    finally:
        conn.close()
