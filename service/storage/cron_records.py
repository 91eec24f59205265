"""Crons as every backend stores them: one row a schedule.

A firing is claimed by moving `next_run_date` from the time that was due to the next
one (`ADVANCE_CRON_SQL`, a compare-and-set): whichever worker's update lands fires the
run, so a schedule fires once even while leadership changes hands.
"""

from __future__ import annotations

import json
from typing import Any

from service.storage.base import CronRecord

CRON_COLUMNS = (
    "cron_id, assistant_id, thread_id, user_id, schedule, timezone, payload, metadata, "
    "enabled, on_run_completed, end_time, next_run_date, created_at, updated_at"
)
SAVE_CRON_SQL = (
    f"INSERT INTO crons ({CRON_COLUMNS}) VALUES ({{marks}}) ON CONFLICT (cron_id) DO UPDATE SET "
    + ", ".join(
        f"{name} = excluded.{name}"
        for name in CRON_COLUMNS.replace(" ", "").split(",")
        if name not in ("cron_id", "created_at")
    )
)
DUE_CRONS_SQL = (
    f"SELECT {CRON_COLUMNS} FROM crons WHERE enabled = {{true}} AND next_run_date <= {{m}} "
    "ORDER BY next_run_date LIMIT {m}"
)
ADVANCE_CRON_SQL = (
    "UPDATE crons SET next_run_date = {m}, enabled = {m}, updated_at = {m} "
    "WHERE cron_id = {m} AND next_run_date = {m}"
)


def cron_params(cron: CronRecord) -> tuple[Any, ...]:
    return (
        cron.cron_id,
        cron.assistant_id,
        cron.thread_id,
        cron.user_id,
        cron.schedule,
        cron.timezone,
        json.dumps(cron.payload, separators=(",", ":")),
        json.dumps(cron.metadata, separators=(",", ":")),
        cron.enabled,
        cron.on_run_completed,
        cron.end_time,
        cron.next_run_date,
        cron.created_at,
        cron.updated_at,
    )


def cron_record(row: tuple[Any, ...] | dict[str, Any]) -> CronRecord:
    """A row of CRON_COLUMNS, as a tuple (SQLite) or a dict (PostgreSQL)."""
    values = list(row.values()) if isinstance(row, dict) else list(row)
    (cron_id, assistant_id, thread_id, user_id, schedule, timezone, payload, metadata) = values[:8]
    (enabled, on_run_completed, end_time, next_run_date, created_at, updated_at) = values[8:]
    return CronRecord(
        cron_id=cron_id,
        assistant_id=assistant_id,
        thread_id=thread_id,
        user_id=user_id,
        schedule=schedule,
        timezone=timezone,
        payload=json.loads(payload),
        metadata=json.loads(metadata),
        enabled=bool(enabled),
        on_run_completed=on_run_completed,
        end_time=end_time,
        next_run_date=next_run_date,
        created_at=created_at,
        updated_at=updated_at,
    )


def cron_filter(
    assistant_id: str | None, thread_id: str | None, enabled: bool | None, m: str
) -> tuple[str, tuple[Any, ...]]:
    """The WHERE clause (possibly empty) and its parameters for a cron listing."""
    clauses, params = [], []
    for column, value in (
        ("assistant_id", assistant_id),
        ("thread_id", thread_id),
        ("enabled", enabled),
    ):
        if value is not None:
            clauses.append(f"{column} = {m}")
            params.append(value)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)
