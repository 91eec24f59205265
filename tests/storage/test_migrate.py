"""`python -m service migrate`: a full, verified, resumable and idempotent copy to PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest
from langgraph.store.sqlite import SqliteStore

from service.bookings.store import BookingStore
from service.ops.cli import main
from service.ops.migrate import EXIT_ERROR, EXIT_MISMATCH, EXIT_OK
from service.settings import Settings
from service.storage.cron_records import CRON_COLUMNS
from service.storage.postgres.pool import new_pool
from service.storage.postgres.saver import PostgresCheckpointer
from service.storage.sqlite.driver import connect
from service.storage.sqlite.saver import SqliteCheckpointer
from service.storage.sqlite.schema import init_database
from service.storage.sqlite.store import init_sqlite_store
from tests.support.server import ROOT

pytestmark = pytest.mark.timeout(180)

THREADS = ("t0", "t1", "t2", "t3")


def build(saver: Any, store: BookingStore, settings: Settings) -> Any:
    from service.agent.graph import build_graph
    from service.agent.model import build_model
    from service.agent.tools import build_tools

    return build_graph(build_model(settings), build_tools(store, settings), settings).compile(
        checkpointer=saver
    )


async def say(graph: Any, thread_id: str, text: str) -> dict[str, Any]:
    return await graph.ainvoke(
        {"messages": [{"role": "user", "content": text}]},
        {"configurable": {"thread_id": thread_id}},
        durability="sync",
    )


def humans(values: dict[str, Any]) -> list[str]:
    return [m.content for m in values["messages"] if m.type == "human"]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Several threads with their whole history (retention off), and one booking."""
    data = tmp_path_factory.mktemp("sqlite")
    path = data / "checkpoints.db"
    settings = Settings(_env_file=None, checkpoint_retention="all")
    init_database(path, settings)
    store = BookingStore(data / "appointments.db", settings)
    store.init_schema()
    day = dt.date.today() + dt.timedelta(days=3)
    while day.weekday() not in settings.booking_open_days:
        day += dt.timedelta(days=1)
    store.book("haircut", dt.datetime.combine(day, dt.time(10)), "Ana", "ana@example.com", "k")
    saver = SqliteCheckpointer(path, settings)
    graph = build(saver, store, settings)

    async def seed() -> None:
        for thread_id in THREADS:
            for turn in range(3):
                await say(graph, thread_id, f"{thread_id} hello {turn}")

    asyncio.run(seed())
    conn = saver.writer
    conn.execute("UPDATE threads SET metadata = '{\"user\": \"ana\"}' WHERE thread_id = 't1'")
    conn.execute(
        "INSERT INTO runs (run_id, thread_id, assistant_id, status, multitask_strategy, "
        "metadata, kwargs, created_at, updated_at, worker) VALUES ('r1', 't1', 'agent', "
        "'success', 'enqueue', '{}', '{\"input\": {\"messages\": []}}', "
        "'2026-12-01T10:00:00.000000Z', '2026-12-01T10:00:01.000000Z', 'host:1')"
    )
    for cron_id, thread_id in (("c1", "'t1'"), ("c2", "NULL")):  # on a thread, stateless
        conn.execute(
            f"INSERT INTO crons ({CRON_COLUMNS}) VALUES ('{cron_id}', 'agent', {thread_id}, "
            "NULL, '0 9 * * *', NULL, '{\"assistant_id\": \"agent\"}', '{}', 1, NULL, NULL, "
            "'2026-12-02T09:00:00.000000Z', '2026-12-01T10:00:00.000000Z', "
            "'2026-12-01T10:00:00.000000Z')"
        )
    saver.close()
    store.close()
    init_sqlite_store(path, settings)
    with contextlib.closing(connect(path, settings)) as db:
        items = SqliteStore(db)
        items.put(("customers",), "ana@example.com", {"name": "Ana", "services": {"haircut": 2}})
        items.put(("notes",), "hours", {"summer": "09:00-14:00"}, ttl=600)
        stamp = "2026-12-01T10:00:00.000000Z"
        db.execute("INSERT INTO assistants VALUES ('lola', 2, ?, ?)", (stamp, stamp))
        for version, salon in ((1, "Lola"), (2, "Lola & Co")):
            db.execute(
                "INSERT INTO assistant_versions VALUES ('lola', ?, 'agent', 'Lola', NULL, "
                "'{}', ?, '{}', ?)",
                (version, f'{{"salon_name": "{salon}"}}', stamp),
            )
    return path


def run(source: Path, url: str, *extra: str) -> int:
    args = ["migrate", "--from", f"sqlite:{source}", "--to", f"postgres:{url}", "--sample", "10"]
    return main([*args, *extra])


def one(url: str, query: str, *params: Any) -> Any:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchone()[0]


def test_migrate_copies_verifies_and_resumes(
    source: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    appointments = source.with_name("appointments.db")
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "service",
            "migrate",
            "--from",
            f"sqlite:{source}",
            "--to",
            f"postgres:{pg_url}",
            "--appointments",
            f"sqlite:{appointments}",
            "--batch-size",
            "2",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == EXIT_OK, cli.stderr
    assert "4 threads: 4 copied" in cli.stdout and "verified" in cli.stdout
    sqlite_checkpoints = SqliteCheckpointer(source, Settings(_env_file=None))
    total = sqlite_checkpoints.conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0]
    sqlite_checkpoints.close()
    assert one(pg_url, "SELECT count(*) FROM checkpoints") == total > len(THREADS)
    assert one(pg_url, "SELECT count(*) FROM appointments WHERE status = 'confirmed'") == 1
    assert one(pg_url, "SELECT metadata ->> 'user' FROM threads WHERE thread_id = 't1'") == "ana"
    assert one(pg_url, "SELECT status FROM runs WHERE run_id = 'r1' AND thread_id = 't1'") == (
        "success"
    )
    assert one(pg_url, "SELECT kwargs -> 'input' ->> 'messages' FROM runs") == "[]"
    assert one(pg_url, "SELECT count(*) FROM crons WHERE enabled") == 2
    assert one(pg_url, "SELECT thread_id FROM crons WHERE cron_id = 'c1'") == "t1"
    assert "2 store items" in cli.stdout and "1 assistants" in cli.stdout
    assert one(pg_url, "SELECT version FROM assistants WHERE assistant_id = 'lola'") == 2
    assert one(pg_url, "SELECT count(*) FROM assistant_versions WHERE assistant_id = 'lola'") == 2
    assert one(pg_url, "SELECT value ->> 'name' FROM store WHERE key = 'ana@example.com'") == "Ana"
    assert one(pg_url, "SELECT ttl_minutes FROM store WHERE prefix = 'notes'") == 600
    # SQLite's timestamps are UTC: the copy says so, whatever the session's time zone.
    made = "SELECT abs(extract(epoch FROM now() - created_at)) < 600 FROM store WHERE key = %s"
    assert one(pg_url, made, "ana@example.com")
    assert one(
        pg_url, "SELECT expires_at > now() + interval '9 hours' FROM store WHERE prefix = 'notes'"
    )

    # Idempotent: nothing to do the second time.
    assert run(source, pg_url) == EXIT_OK
    assert "0 copied" in capsys.readouterr().out

    # Resumable: a thread cut short (no marker, half its rows) is copied again, whole.
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DELETE FROM service_migrated_threads WHERE thread_id = 't2'")
        conn.execute(
            "DELETE FROM checkpoints WHERE thread_id = 't2' AND checkpoint_id IN "
            "(SELECT checkpoint_id FROM checkpoints WHERE thread_id = 't2' LIMIT 3)"
        )
    assert run(source, pg_url) == EXIT_OK
    assert "1 copied" in capsys.readouterr().out
    assert one(pg_url, "SELECT count(*) FROM checkpoints") == total

    # A damaged copy of a thread marked complete is caught by the verification.
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "DELETE FROM checkpoints WHERE thread_id = 't3' AND checkpoint_id = "
            "(SELECT min(checkpoint_id) FROM checkpoints WHERE thread_id = 't3')"
        )
    assert run(source, pg_url) == EXIT_MISMATCH
    assert "checkpoints" in capsys.readouterr().err
    assert run(source, pg_url, "--from", "nope") == EXIT_ERROR


def test_the_service_continues_migrated_conversations(
    source: Path, pg_url: str, tmp_path: Path
) -> None:
    """Run the real graph on the copy: the history is whole and new turns append to it."""
    assert run(source, pg_url) in (EXIT_OK, EXIT_MISMATCH)  # copied by the test above
    settings = Settings(_env_file=None, checkpointer="postgres", database_url=pg_url)

    async def continue_t0() -> list[str]:
        pool = new_pool(settings, "test")
        await pool.open(wait=True)
        try:
            store = BookingStore(tmp_path / "appointments.db", settings)
            store.init_schema()
            graph = build(PostgresCheckpointer(pool, keep_last=1), store, settings)
            values = await say(graph, "t0", "t0 after the move")
            store.close()
            return humans(values)
        finally:
            await pool.close()

    assert asyncio.run(continue_t0()) == [f"t0 hello {i}" for i in range(3)] + ["t0 after the move"]
