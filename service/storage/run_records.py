"""Run records as every backend stores them: one row a run, whatever its endpoint.

A run's record is written once it holds its thread (`running`) and again when it ends
(its final status), both before the thread is let go; so a `running` record whose
thread nobody holds belongs to a worker that died, and the maintenance leader marks
it `error` (`STALE_RUNS_SQL`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
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


def run_params(run: RunRecord, as_json: Callable[[dict[str, Any]], Any]) -> tuple[Any, ...]:
    """A record's RUN_COLUMNS values, its JSON columns through `as_json` (each backend's)."""
    return (
        run.run_id,
        run.thread_id,
        run.assistant_id,
        run.status,
        run.multitask_strategy,
        as_json(run.metadata),
        as_json(run.kwargs),
        run.created_at,
        run.updated_at,
        run.worker,
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


# --- the queue of background runs -----------------------------------------------------
# Run ids are time-ordered (UUID v6), so their order is the order runs were accepted in;
# "C" collation keeps PostgreSQL's comparison byte-wise, as SQLite's is.
_ID_ORDER = "run_id{collate}"

# The oldest pending run of each thread: a thread's later runs wait behind its first, and
# one busy thread's backlog cannot hide the others'. Those the asking worker accepted
# come first (their clients' joins, on the same keep-alive connection, wait on it in
# memory), and any that has waited OWN_FIRST_S (a worker that has gone, say, accepted
# it), then everyone's, oldest first. Parameters: worker, cutoff (created before it:
# waited long enough), limit.
OWN_FIRST_S = 5.0


def own_first_cutoff() -> dt.datetime:
    """Runs accepted before this have waited long enough to go first wherever they came
    from."""
    return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=OWN_FIRST_S)


NEXT_PENDING_SQL = (
    f"SELECT {RUN_COLUMNS} FROM runs AS r WHERE status = 'pending' AND run_id = ("
    "SELECT min(run_id{collate}) FROM runs WHERE thread_id = r.thread_id AND status = 'pending'"
    f") ORDER BY CASE WHEN worker = {{m}} OR created_at < {{m}} THEN 0 ELSE 1 END, "
    f"{_ID_ORDER} LIMIT {{m}}"
)
# A worker that holds the thread takes its pending run; only one can.
CLAIM_RUN_SQL = (
    "UPDATE runs SET status = 'running', worker = {m}, updated_at = {now} "
    "WHERE run_id = {m} AND status = 'pending'"
)
# Whoever holds a thread knows that no other run on it is alive: one still `running` was
# left by a worker that died, and is failed at once rather than at the leader's next pass.
STALE_ON_THREAD_SQL = (
    "UPDATE runs SET status = 'error', updated_at = {now} "
    "WHERE thread_id = {m} AND status = 'running' AND run_id <> {m}"
)
# The statuses of the runs joins wait for, at most this many in one read.
RUN_STATUSES_SQL = "SELECT run_id, status FROM runs WHERE run_id IN ({marks})"
RUN_STATUSES_MAX = 500
QUEUE_STATS_SQL = (
    "SELECT count(*) AS n, min(created_at) AS oldest FROM runs WHERE status = 'pending'"
)


def insert_run_sql(values: str, m: str, *, unless_queued: bool, unless_active: bool = False) -> str:
    """Insert one run from `values` (its RUN_COLUMNS' placeholders), in one statement:
    `unless_queued`, only if no run accepted before it still waits for the thread (the
    wait and stream runs' record, so that they never overtake a background run);
    `unless_active`, only if none of the thread's runs is pending or running (a
    background run with `reject`)."""
    if unless_active:
        blocking = ACTIVE_RUN_FILTER
    elif unless_queued:
        blocking = "status = 'pending'"
    else:
        return f"INSERT INTO runs ({RUN_COLUMNS}) VALUES ({values})"
    return (
        f"INSERT INTO runs ({RUN_COLUMNS}) SELECT {values} WHERE NOT EXISTS ("
        f"SELECT 1 FROM runs WHERE thread_id = {m} AND {blocking})"
    )


# --- cancellation ----------------------------------------------------------------------
CANCEL_ACTIONS = ("interrupt", "rollback")
# A pending run is cancelled where it stands; a running one is asked to stop, and the
# worker running it (it polls `CANCEL_REQUESTS_SQL`) does.
CANCEL_PENDING_SQL = (
    "UPDATE runs SET status = 'interrupted', updated_at = {now} "
    "WHERE run_id = {m} AND status = 'pending'"
)
DELETE_PENDING_SQL = "DELETE FROM runs WHERE run_id = {m} AND status = 'pending'"
REQUEST_CANCEL_SQL = (
    "UPDATE runs SET cancel = {m}, updated_at = {now} WHERE run_id = {m} AND status = 'running'"
)
CANCEL_REQUESTS_SQL = (
    "SELECT run_id, cancel FROM runs WHERE status = 'running' AND worker = {m} "
    "AND cancel IS NOT NULL"
)
# An active run's record, for a cancel by filter (`POST /runs/cancel`).
ACTIVE_RUN_FILTER = "status IN ('pending', 'running')"
