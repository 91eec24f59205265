"""Schema of the PostgreSQL store, created once before the workers fork.

LangGraph's own migrations (`PostgresSaver.setup()`) create and upgrade the
checkpoint tables; the service adds `threads`, the thread API's records (the
same columns as SQLite's, with native types). Several hosts may start at once,
so the whole setup runs under one advisory lock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from langgraph.checkpoint.postgres import PostgresSaver
from psycopg.rows import dict_row

from service.storage.assistant_records import ASSISTANTS_DDL
from service.storage.postgres.links import LINKS_DDL
from service.storage.postgres.store import init_postgres_store

log = logging.getLogger(__name__)

# pg_advisory_lock(int, int) keys: a key space of their own, apart from the
# single-bigint keys of the thread guard.
LOCK_CLASS = 0x0B00C1A6
SCHEMA_LOCK = 1
LEADER_LOCK = 2
BOOKINGS_LOCK = 3

THREADS_DDL = """
CREATE TABLE IF NOT EXISTS threads (
    thread_id TEXT PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    metadata JSONB NOT NULL DEFAULT '{}',
    status TEXT NOT NULL DEFAULT 'idle',
    error TEXT
);
CREATE INDEX IF NOT EXISTS threads_updated_at ON threads (updated_at);
CREATE INDEX IF NOT EXISTS threads_not_idle ON threads (status) WHERE status <> 'idle';
ALTER TABLE threads ADD COLUMN IF NOT EXISTS ttl_minutes DOUBLE PRECISION;
CREATE INDEX IF NOT EXISTS threads_own_ttl ON threads (updated_at) WHERE ttl_minutes IS NOT NULL;
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    thread_id TEXT NOT NULL,
    assistant_id TEXT NOT NULL,
    status TEXT NOT NULL,
    multitask_strategy TEXT,
    metadata JSONB NOT NULL DEFAULT '{}',
    kwargs JSONB NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    worker TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS runs_by_thread ON runs (thread_id, created_at);
CREATE INDEX IF NOT EXISTS runs_active ON runs (status) WHERE status IN ('pending', 'running');
CREATE INDEX IF NOT EXISTS runs_pending ON runs (thread_id, run_id) WHERE status = 'pending';
ALTER TABLE runs ADD COLUMN IF NOT EXISTS cancel TEXT;
CREATE TABLE IF NOT EXISTS run_events (
    run_id TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, seq)
);
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
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    on_run_completed TEXT,
    end_time TEXT,
    next_run_date TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS crons_due ON crons (next_run_date) WHERE enabled;
CREATE INDEX IF NOT EXISTS crons_by_thread ON crons (thread_id);
"""
# Threads written by a plain LangGraph script become visible to the thread API.
BACKFILL_SQL = """
INSERT INTO threads (thread_id)
SELECT DISTINCT thread_id FROM checkpoints
ON CONFLICT (thread_id) DO NOTHING
"""


def connect(url: str, *, attempts_s: float = 30.0) -> psycopg.Connection:
    """One autocommit connection, retried for a while: the database may still be starting."""
    deadline = time.monotonic() + attempts_s
    while True:
        try:
            return psycopg.connect(
                url,
                autocommit=True,
                prepare_threshold=None,
                row_factory=dict_row,
                connect_timeout=5,
                application_name="booking-agent:setup",
            )
        except psycopg.OperationalError:
            if time.monotonic() >= deadline:
                raise
            log.warning("PostgreSQL not reachable yet; retrying")
            time.sleep(1.0)


@contextmanager
def schema_lock(conn: psycopg.Connection) -> Iterator[None]:
    conn.execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_CLASS, SCHEMA_LOCK))
    try:
        yield
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_CLASS, SCHEMA_LOCK))


def init_postgres(url: str) -> None:
    """Create or upgrade the checkpoint and thread tables; idempotent."""
    with connect(url) as conn, schema_lock(conn):
        PostgresSaver(conn).setup()
        init_postgres_store(conn)
        with conn.transaction():
            conn.execute(LINKS_DDL)  # message links: full history, stored linearly
        new_threads_table = (
            conn.execute("SELECT to_regclass('threads') IS NULL AS missing").fetchone() or {}
        ).get("missing", False)
        with conn.transaction():
            conn.execute(THREADS_DDL)
            conn.execute(ASSISTANTS_DDL)
            if new_threads_table:
                conn.execute(BACKFILL_SQL)
        version = conn.execute("SHOW server_version").fetchone()
        log.info(
            "PostgreSQL schema ready (server %s)", version["server_version"] if version else "?"
        )
