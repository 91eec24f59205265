"""Run records as every backend stores them: one row a run, whatever its endpoint.

A run's record is written once it holds its thread (`running`) and again when it ends
(its final status), both before the thread is let go; so a `running` record whose
thread nobody holds belongs to a worker that died, and the maintenance leader marks
it `error` (`STALE_RUNS_SQL`).
"""

from __future__ import annotations

import json
from typing import Any

from service.storage.base import RunRecord
from service.storage.records import iso_utc

RUN_STATUSES = ("pending", "running", "success", "error", "timeout", "interrupted")
ACTIVE_STATUSES = ("pending", "running")
STALE_RUN_ERROR = "the worker running it stopped before the run ended"

RUN_COLUMNS = (
    "run_id, thread_id, assistant_id, status, multitask_strategy, metadata, kwargs, "
    "created_at, updated_at, worker"
)


def _json(value: str | bytes | dict[str, Any] | None) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str | bytes) else value or {}


def run_record(row: tuple[Any, ...] | dict[str, Any]) -> RunRecord:
    """A row of RUN_COLUMNS, as a tuple (SQLite) or a dict (PostgreSQL)."""
    values = list(row.values()) if isinstance(row, dict) else list(row)
    (
        run_id,
        thread_id,
        assistant_id,
        status,
        strategy,
        metadata,
        kwargs,
        created,
        updated,
        worker,
    ) = values
    return RunRecord(
        run_id=run_id,
        thread_id=thread_id,
        assistant_id=assistant_id,
        status=status,
        multitask_strategy=strategy,
        metadata=_json(metadata),
        kwargs=_json(kwargs),
        created_at=created if isinstance(created, str) else iso_utc(created),
        updated_at=updated if isinstance(updated, str) else iso_utc(updated),
        worker=worker or "",
    )


def dumps(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# Only `running`: a `pending` run holds no thread yet, so a free thread says nothing of it.
ACTIVE_RUNS_SQL = "SELECT run_id, thread_id FROM runs WHERE status = 'running'"
STALE_RUN_SQL = (
    "UPDATE runs SET status = 'error', updated_at = {now} WHERE run_id = {m} AND status = 'running'"
)


def run_list_where(status: str | None, mark: str) -> str:
    return f"WHERE thread_id = {mark}" + (f" AND status = {mark}" if status else "")


# A finished run's record may be deleted; an active one stays (409 in the API).
DELETE_RUN_WHERE = "thread_id = {m} AND run_id = {m} AND status NOT IN ('pending', 'running')"
