"""The official checkpoint saver contract, extended capabilities included, for both backends."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.report import ProgressCallbacks

from service.settings import Settings
from service.storage.postgres.pool import new_pool
from service.storage.postgres.saver import PostgresCheckpointer
from service.storage.postgres.schema import init_postgres
from service.storage.sqlite.saver import SqliteCheckpointer
from service.storage.sqlite.schema import init_database

EVERY_CAPABILITY = {
    "put",
    "put_writes",
    "get_tuple",
    "list",
    "delete_thread",
    "delete_for_runs",
    "copy_thread",
    "prune",
}


async def assert_full_conformance(factory: object) -> None:
    report = await validate(factory, progress=ProgressCallbacks.quiet())
    failures = {name: r.failures for name, r in report.results.items() if not r.passed}
    assert not failures, failures
    assert {name for name, r in report.results.items() if r.detected} == EVERY_CAPABILITY
    assert report.passed_all(), report.to_dict()
    assert report.conformance_level() == "FULL", report.conformance_level()


@checkpointer_test(name="SqliteCheckpointer")
async def sqlite_checkpointer():
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "checkpoints.db"
        settings = Settings(_env_file=None)
        init_database(path, settings)
        saver = SqliteCheckpointer(path, settings)
        try:
            yield saver
        finally:
            saver.close()


async def test_sqlite_checkpointer_passes_full_conformance_suite() -> None:
    await assert_full_conformance(sqlite_checkpointer)


async def test_postgres_checkpointer_passes_full_conformance_suite(pg_url: str) -> None:
    settings = Settings(_env_file=None, checkpointer="postgres", database_url=pg_url)
    await asyncio.to_thread(init_postgres, pg_url)
    pool = new_pool(settings, "conformance")
    await pool.open(wait=True)

    @checkpointer_test(name="PostgresCheckpointer")
    async def postgres_checkpointer():
        yield PostgresCheckpointer(pool)

    try:
        await assert_full_conformance(postgres_checkpointer)
    finally:
        await pool.close()
