"""The official checkpoint saver contract, extended capabilities included."""

from __future__ import annotations

import tempfile
from pathlib import Path

from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.report import ProgressCallbacks

from service.persistence.sqlite_saver import SqliteCheckpointer
from service.persistence.sqlite_schema import init_database
from service.settings import Settings


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
    report = await validate(sqlite_checkpointer, progress=ProgressCallbacks.quiet())
    failures = {name: r.failures for name, r in report.results.items() if not r.passed}
    assert not failures, failures
    every_capability = {
        "put",
        "put_writes",
        "get_tuple",
        "list",
        "delete_thread",
        "delete_for_runs",
        "copy_thread",
        "prune",
    }
    assert {name for name, r in report.results.items() if r.detected} == every_capability
    assert report.passed_all(), report.to_dict()
    assert report.conformance_level() == "FULL", report.conformance_level()
